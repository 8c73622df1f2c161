//! Kubernetes storage quantities (`10Gi`, `500M`, `1.5T`, `1024`), in the forms the operator
//! accepts; exponent forms (`1e9`) and milli-units are not used for storage.

const SUFFIXES: [(&str, f64); 13] = [
    ("Ki", 1024.0),
    ("Mi", 1048576.0),
    ("Gi", 1073741824.0),
    ("Ti", 1099511627776.0),
    ("Pi", 1125899906842624.0),
    ("Ei", 1152921504606846976.0),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
    ("", 1.0),
];

/// The same syntax for the CRD schema, so the apiserver refuses a malformed size up front
/// (the schema cannot say "positive": [`bytes`] still refuses zero).
pub const PATTERN: &str = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$";

/// Adds [`PATTERN`] to a quantity's schema (a string pattern; integers stay allowed).
pub fn schema_pattern(schema: &mut schemars::Schema) {
    schema.insert("pattern".to_string(), PATTERN.into());
}

/// Bytes of a positive quantity, or `None` when it is not one.
pub fn bytes(value: &str) -> Option<f64> {
    let number_end = value.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(value.len());
    let (number, suffix) = value.split_at(number_end);
    let n = number.parse::<f64>().ok().filter(|n| *n > 0.0)?;
    let (_, factor) = SUFFIXES.iter().find(|(s, _)| *s == suffix)?;
    Some(n * factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_bytes() {
        let table = [
            ("1024", Some(1024.0)),
            ("1Ki", Some(1024.0)),
            ("10Gi", Some(10.0 * 1073741824.0)),
            ("1.5T", Some(1.5e12)),
            ("500M", Some(5e8)),
            ("", None),
            ("0", None),
            ("Gi", None),
            ("10Gb", None),
            ("-1Gi", None),
            ("ten gigs", None),
        ];
        for (value, want) in table {
            assert_eq!(bytes(value), want, "{value}");
        }
        assert!(bytes("1Gi") < bytes("1100M"), "binary and decimal suffixes compare by bytes");
    }
}
