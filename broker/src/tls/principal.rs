//! The principal of a TLS client, as Kafka's `DefaultKafkaPrincipalBuilder` makes it: the subject of its
//! certificate written as Java's `X500Principal.getName()` does (RFC 2253: last RDN first, `,` between RDNs,
//! `+` inside one, CN/C/L/ST/O/OU/STREET/DC/UID by name and other attributes as `OID=#hex`), then passed
//! through `ssl.principal.mapping.rules` (Kafka's `SslPrincipalMapper`: `DEFAULT` keeps the name,
//! `RULE:pattern/replacement/[LU]` rewrites a name the pattern matches whole; the first rule that applies
//! wins, and a name no rule applies to is refused).

use std::fmt::Write;

use regex::Regex;

/// Kafka's principal of clients that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace { pattern: Regex, replacement: String, lower: bool, upper: bool },
}

/// Parsed `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl PrincipalMapper {
    /// Parses the rules: `DEFAULT` and `RULE:pattern/replacement/` with an optional `L` or `U`, separated by
    /// commas or newlines (a `/` or `,` inside a pattern or replacement is escaped with `\`).
    pub fn parse(value: &str) -> Result<PrincipalMapper, String> {
        let mut rules = Vec::new();
        let mut rest = value.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = split_unescaped(after, '/').ok_or("RULE: expected RULE:pattern/replacement/[LU]")?;
                let (replacement, after) = split_unescaped(after, '/').ok_or("RULE: expected RULE:pattern/replacement/[LU]")?;
                let (lower, upper, after) = match after.chars().next() {
                    Some('L') => (true, false, &after[1..]),
                    Some('U') => (false, true, &after[1..]),
                    _ => (false, false, after),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("bad pattern {pattern:?}: {e}"))?;
                rules.push(Rule::Replace { pattern, replacement: java_replacement(replacement), lower, upper });
                rest = after;
            } else {
                return Err(format!("invalid rule {rest:?}: expected DEFAULT or RULE:pattern/replacement/[LU]"));
            }
            rest = rest.trim_start();
            match rest.chars().next() {
                None => {}
                Some(',' | '\n') => rest = rest[1..].trim_start(),
                Some(_) => return Err(format!("invalid rule ending {rest:?}")),
            }
        }
        if rules.is_empty() {
            return Err("no rule".into());
        }
        Ok(PrincipalMapper { rules })
    }

    /// The short name for a distinguished name, or None when no rule applies (authentication fails).
    pub fn map(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_string()),
            Rule::Replace { pattern, replacement, lower, upper } => {
                let caps = pattern.captures(dn)?;
                let mut out = String::new();
                caps.expand(replacement, &mut out);
                Some(match (lower, upper) {
                    (true, _) => out.to_lowercase(),
                    (_, true) => out.to_uppercase(),
                    _ => out,
                })
            }
        })
    }
}

/// (text before the first `sep` not escaped with `\`, text after it).
fn split_unescaped(s: &str, sep: char) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == sep => return Some((&s[..i], &s[i + 1..])),
            _ => {}
        }
    }
    None
}

/// Java's replacement syntax (`$1`, `\x` for a literal x) in the regex crate's (`${1}`, `$$`).
fn java_replacement(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                match digits.is_empty() {
                    true => out.push_str("$$"),
                    false => write!(out, "${{{digits}}}").expect("writing to a string"),
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A DER reader over one TLV after another; every read is bounds-checked (a certificate that passed
/// verification is well-formed, but nothing here may panic on one that is not).
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// (tag, contents, the whole element).
    fn next(&mut self) -> Option<(u8, &'a [u8], &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            (rest[..n].iter().fold(0usize, |a, b| (a << 8) | *b as usize), &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        let header = self.0.len() - rest.len();
        let whole = &self.0[..header + len];
        self.0 = &rest[len..];
        Some((tag, &rest[..len], whole))
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;

/// The subject of a DER certificate in Java's RFC 2253 form, e.g. `CN=client,OU=eng,O=Acme,C=US`.
pub fn subject_dn(cert: &[u8]) -> Option<String> {
    let (SEQUENCE, cert, _) = Der(cert).next()? else { return None };
    let (SEQUENCE, tbs, _) = Der(cert).next()? else { return None };
    let mut tbs = Der(tbs);
    if tbs.next()?.0 == 0xa0 {
        tbs.next()?; // the explicit [0] version came first: this is the serial number
    }
    let _signature = tbs.next()?;
    let _issuer = tbs.next()?;
    let _validity = tbs.next()?;
    let (SEQUENCE, name, _) = tbs.next()? else { return None };
    let mut rdns = Vec::new();
    let mut name = Der(name);
    while !name.0.is_empty() {
        let (SET, set, _) = name.next()? else { return None };
        let mut avas = Vec::new();
        let mut set = Der(set);
        while !set.0.is_empty() {
            let (SEQUENCE, ava, _) = set.next()? else { return None };
            let mut ava = Der(ava);
            let (0x06, oid, _) = ava.next()? else { return None };
            let (tag, value, whole) = ava.next()?;
            avas.push(attribute(oid, tag, value, whole)?);
        }
        rdns.push(avas.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// One `type=value`: a keyword Java knows with a string value, escaped; anything else as `OID=#hex`.
fn attribute(oid: &[u8], tag: u8, value: &[u8], whole: &[u8]) -> Option<String> {
    const KEYWORDS: &[(&[u8], &str)] = &[
        (&[0x55, 0x04, 0x03], "CN"),
        (&[0x55, 0x04, 0x06], "C"),
        (&[0x55, 0x04, 0x07], "L"),
        (&[0x55, 0x04, 0x08], "ST"),
        (&[0x55, 0x04, 0x09], "STREET"),
        (&[0x55, 0x04, 0x0a], "O"),
        (&[0x55, 0x04, 0x0b], "OU"),
        (&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19], "DC"),
        (&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01], "UID"),
    ];
    let text = match tag {
        // UTF8String, PrintableString, TeletexString (as Latin-1), IA5String.
        0x0c | 0x13 | 0x16 => std::str::from_utf8(value).ok().map(str::to_string),
        0x14 => Some(value.iter().map(|b| *b as char).collect()),
        // BMPString: UTF-16BE.
        0x1e => {
            let units = value.chunks_exact(2);
            let odd = !units.remainder().is_empty();
            let units: Vec<u16> = units.map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            String::from_utf16(&units).ok().filter(|_| !odd)
        }
        _ => None,
    };
    let keyword = KEYWORDS.iter().find(|(o, _)| *o == oid).map(|(_, k)| *k);
    Some(match (keyword, text) {
        (Some(k), Some(t)) => format!("{k}={}", escape(&t)),
        _ => format!("{}=#{}", oid_string(oid)?, whole.iter().map(|b| format!("{b:02x}")).collect::<String>()),
    })
}

/// RFC 2253 escaping: `,+"\<>;` anywhere, `#` or a space first, a space last.
fn escape(s: &str) -> String {
    let n = s.chars().count();
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || (i == 0 && matches!(c, '#' | ' ')) || (i == n - 1 && c == ' ')
        {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Dotted form of a DER object identifier.
fn oid_string(oid: &[u8]) -> Option<String> {
    let (&first, _) = oid.split_first()?;
    let mut parts = vec![(first / 40).min(2) as u64, (first as u64) - 40 * (first / 40).min(2) as u64];
    let mut v: u64 = 0;
    for &b in &oid[1..] {
        v = v.checked_mul(128)? | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            parts.push(v);
            v = 0;
        }
    }
    Some(parts.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_rules_as_kafka_applies_them() {
        let m = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, DEFAULT",
        )
        .unwrap();
        assert_eq!(m.map("CN=kafka-server,OU=ServiceUsers,O=Org,C=US").as_deref(), Some("kafka-server"));
        assert_eq!(m.map("CN=Duke,OU=JavaSoft,O=Sun,L=Palo Alto,ST=CA,C=US").as_deref(), Some("duke@javasoft"));
        assert_eq!(m.map("CN=other,O=x").as_deref(), Some("CN=other,O=x"), "DEFAULT keeps the name");
        let upper = PrincipalMapper::parse("RULE:^CN=([a-z]+)\\/x$/$1-\\$/U").unwrap();
        assert_eq!(upper.map("CN=abc/x").as_deref(), Some("ABC-$"));
        let only = PrincipalMapper::parse("RULE:CN=(.*)/$1/").unwrap();
        assert_eq!(only.map("O=no-cn"), None, "a name no rule applies to is refused");
        assert_eq!(only.map("CN=a").as_deref(), Some("a"));
        for bad in ["", "RULE:abc", "RULE:(/x/", "NOPE", "DEFAULT x"] {
            assert!(PrincipalMapper::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subject_in_rfc_2253_order_and_escaping() {
        // Certificate { tbs { [0] v3, serial, sigalg, issuer, validity, subject { C=US, O="A,B", CN=" x+" } } }
        let ava = |oid: &[u8], tag: u8, v: &[u8]| {
            let mut a = vec![0x06, oid.len() as u8];
            a.extend_from_slice(oid);
            a.extend_from_slice(&[tag, v.len() as u8]);
            a.extend_from_slice(v);
            let mut s = vec![SEQUENCE, a.len() as u8];
            s.extend(a);
            let mut set = vec![SET, s.len() as u8];
            set.extend(s);
            set
        };
        let mut name = Vec::new();
        name.extend(ava(&[0x55, 4, 6], 0x13, b"US"));
        name.extend(ava(&[0x55, 4, 10], 0x0c, b"A,B"));
        name.extend(ava(&[0x55, 4, 3], 0x0c, b" x+"));
        name.extend(ava(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 1, 9, 1], 0x16, b"a@b"));
        let tlv = |tag: u8, body: &[u8]| {
            let mut v = vec![tag, body.len() as u8];
            v.extend_from_slice(body);
            v
        };
        let mut tbs = tlv(0xa0, &[2, 1, 2]);
        tbs.extend(tlv(2, &[1]));
        tbs.extend(tlv(SEQUENCE, &[]));
        tbs.extend(tlv(SEQUENCE, &[]));
        tbs.extend(tlv(SEQUENCE, &[]));
        tbs.extend(tlv(SEQUENCE, &name));
        let cert = tlv(SEQUENCE, &tlv(SEQUENCE, &tbs));
        assert_eq!(
            subject_dn(&cert).unwrap(),
            "1.2.840.113549.1.9.1=#1603614062,CN=\\ x\\+,O=A\\,B,C=US",
            "last RDN first, as Java prints it"
        );
        for cut in 0..cert.len() {
            let _ = subject_dn(&cert[..cut]); // truncated input: None or a name, never a panic
        }
    }
}
