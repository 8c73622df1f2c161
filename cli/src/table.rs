//! Output for people and for scripts: aligned tables, and JSON.

use std::fmt::Write;

/// Columns separated by two spaces, each as wide as its widest cell (counted in chars); no trailing spaces.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            } else {
                widths.push(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A list of ids as `1,2,3` (`-` when empty).
pub fn ids(ids: &[i32]) -> String {
    if ids.is_empty() {
        return "-".to_string();
    }
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// An optional value, `-` when absent.
pub fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

pub fn json<T: serde::Serialize>(value: &T) -> String {
    let mut s = serde_json::to_string_pretty(value).expect("output types serialize");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let rows =
            vec![vec!["demo".to_string(), "3".into(), "1".into()], vec!["a-much-longer-name".into(), "12".into(), "".into()]];
        assert_eq!(
            render(&["NAME", "PARTITIONS", "REPLICAS"], &rows),
            "NAME                PARTITIONS  REPLICAS\n\
             demo                3           1\n\
             a-much-longer-name  12\n"
        );
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let rows = vec![vec!["ü".to_string(), "x".into()]];
        assert_eq!(render(&["K", "V"], &rows), "K  V\nü  x\n");
    }

    #[test]
    fn lists_and_absent_values() {
        assert_eq!(ids(&[0, 2]), "0,2");
        assert_eq!(ids(&[]), "-");
        assert_eq!(opt(None::<i32>), "-");
        assert_eq!(opt(Some(5)), "5");
    }
}
