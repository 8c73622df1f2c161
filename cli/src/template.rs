//! kcat-style record format templates (`-f '%k\t%s\n'`) and the backslash escapes shared with the key
//! separator. Output is bytes: keys and values are written as stored, so what `produce` read comes back
//! byte for byte.

use anyhow::bail;

/// `\n`, `\t`, `\r`, `\0` and `\\` as the bytes they name; other backslashes stay as typed.
pub fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes().peekable();
    while let Some(b) = bytes.next() {
        let escaped = match (b, bytes.peek()) {
            (b'\\', Some(b'n')) => b'\n',
            (b'\\', Some(b't')) => b'\t',
            (b'\\', Some(b'r')) => b'\r',
            (b'\\', Some(b'0')) => 0,
            (b'\\', Some(b'\\')) => b'\\',
            _ => {
                out.push(b);
                continue;
            }
        };
        bytes.next();
        out.push(escaped);
    }
    out
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    KeyLen,
    Value,
    ValueLen,
    Headers,
    Timestamp,
}

/// A parsed template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template(Vec<Token>);

/// What a template can show of a record.
pub struct RecordView<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch, None when the record has none.
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
}

pub const HELP: &str = "%t topic, %p partition, %o offset, %k key, %K key length, %s value, %S value length, \
    %h headers (k=v,k2=v2), %T timestamp (ms), %% a percent sign; \\n \\t \\r \\0 \\\\ escapes";

impl Template {
    pub fn parse(template: &str) -> anyhow::Result<Template> {
        let mut tokens = Vec::new();
        let mut literal = Vec::new();
        let mut bytes = unescape(template).into_iter();
        while let Some(b) = bytes.next() {
            if b != b'%' {
                literal.push(b);
                continue;
            }
            let token = match bytes.next() {
                Some(b'%') => {
                    literal.push(b'%');
                    continue;
                }
                Some(b't') => Token::Topic,
                Some(b'p') => Token::Partition,
                Some(b'o') => Token::Offset,
                Some(b'k') => Token::Key,
                Some(b'K') => Token::KeyLen,
                Some(b's') => Token::Value,
                Some(b'S') => Token::ValueLen,
                Some(b'h') => Token::Headers,
                Some(b'T') => Token::Timestamp,
                Some(other) => bail!("unknown format token %{} ({HELP})", other as char),
                None => bail!("the format ends with a lone % (use %% for a percent sign)"),
            };
            if !literal.is_empty() {
                tokens.push(Token::Literal(std::mem::take(&mut literal)));
            }
            tokens.push(token);
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Ok(Template(tokens))
    }

    /// Appends the record as the template says. Absent keys and values print as nothing, their lengths as -1
    /// (as kcat does).
    pub fn render(&self, r: &RecordView, out: &mut Vec<u8>) {
        let len = |b: Option<&[u8]>| b.map_or(-1, |b| b.len() as i64).to_string();
        for token in &self.0 {
            match token {
                Token::Literal(l) => out.extend_from_slice(l),
                Token::Topic => out.extend_from_slice(r.topic.as_bytes()),
                Token::Partition => out.extend_from_slice(r.partition.to_string().as_bytes()),
                Token::Offset => out.extend_from_slice(r.offset.to_string().as_bytes()),
                Token::Key => out.extend_from_slice(r.key.unwrap_or_default()),
                Token::KeyLen => out.extend_from_slice(len(r.key).as_bytes()),
                Token::Value => out.extend_from_slice(r.value.unwrap_or_default()),
                Token::ValueLen => out.extend_from_slice(len(r.value).as_bytes()),
                Token::Timestamp => out.extend_from_slice(r.timestamp.unwrap_or(-1).to_string().as_bytes()),
                Token::Headers => {
                    for (i, (k, v)) in r.headers.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(k.as_bytes());
                        out.push(b'=');
                        out.extend_from_slice(v.unwrap_or_default());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RecordView<'static> {
        RecordView {
            topic: "demo",
            partition: 2,
            offset: 17,
            timestamp: Some(1700000000000),
            key: Some(b"k1"),
            value: Some(b"hello\tworld"),
            headers: vec![("a", Some(b"1")), ("b", None)],
        }
    }

    fn render(template: &str, r: &RecordView) -> String {
        let mut out = Vec::new();
        Template::parse(template).unwrap().render(r, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_token_renders() {
        assert_eq!(
            render("%t/%p@%o %T %k=%s (%K,%S) [%h] 100%%\\n", &record()),
            "demo/2@17 1700000000000 k1=hello\tworld (2,11) [a=1,b=] 100%\n"
        );
        let empty = RecordView { key: None, value: None, timestamp: None, headers: vec![], ..record() };
        assert_eq!(render("[%k][%s] %K %S %T [%h]", &empty), "[][] -1 -1 -1 []");
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(Template::parse("%x").unwrap_err().to_string().contains("unknown format token %x"));
        assert!(Template::parse("abc%").is_err());
    }

    #[test]
    fn escapes() {
        assert_eq!(unescape("a\\tb\\nc\\\\d\\q"), b"a\tb\nc\\d\\q");
        assert_eq!(unescape("\\0|"), b"\0|");
        assert_eq!(unescape("tail\\"), b"tail\\");
    }
}
