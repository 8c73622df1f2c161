//! SASL PLAIN (RFC 4616): the client's one message, `authzid NUL username NUL password`.

/// The username and password of a PLAIN message; Err says why it is malformed. As Kafka's PlainSaslServer,
/// an authorization id other than the username is refused.
pub fn parse(token: &[u8]) -> Result<(String, String), String> {
    let text = std::str::from_utf8(token).map_err(|_| "the PLAIN message is not UTF-8".to_string())?;
    let parts: Vec<&str> = text.split('\0').collect();
    let [authzid, user, password] = parts[..] else {
        return Err(format!("the PLAIN message has {} NUL-separated fields, not 3", parts.len()));
    };
    if user.is_empty() {
        return Err("no username in the PLAIN message".into());
    }
    if password.is_empty() {
        return Err("no password in the PLAIN message".into());
    }
    if !authzid.is_empty() && authzid != user {
        return Err("the authorization id differs from the username".into());
    }
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_messages() {
        let ok = |t: &[u8]| parse(t).unwrap();
        assert_eq!(ok(b"\0alice\0secret"), ("alice".to_string(), "secret".to_string()));
        assert_eq!(ok(b"alice\0alice\0p"), ("alice".to_string(), "p".to_string()));
        assert_eq!(ok(strata_client::plain_token("bob", "pw=x").as_slice()), ("bob".to_string(), "pw=x".to_string()));
        for (bad, why) in [
            (&b""[..], "1 NUL"),
            (b"\0alice", "2 NUL"),
            (b"\0a\0b\0c", "4 NUL"),
            (b"\0\0secret", "no username"),
            (b"\0alice\0", "no password"),
            (b"bob\0alice\0secret", "authorization id"),
            (b"\0al\xffice\0secret", "UTF-8"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
