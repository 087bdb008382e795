//! Query-string parsing that keeps order and duplicates, so unknown parameters can be named in the
//! error exactly as Desk does.

/// Decoded `(name, value)` pairs in request order.
pub fn parse(raw: Option<&str>) -> Vec<(String, String)> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Percent-decoding with `+` as space; invalid escapes are kept literally.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs() {
        let q = parse(Some("a=1&b=x%2Cy&c=2024-01-01T00%3A00%3A00.000Z&d&e=a+b"));
        assert_eq!(q[0], ("a".into(), "1".into()));
        assert_eq!(q[1].1, "x,y");
        assert_eq!(q[2].1, "2024-01-01T00:00:00.000Z");
        assert_eq!(q[3], ("d".into(), String::new()));
        assert_eq!(q[4].1, "a b");
        assert_eq!(decode("%zz%4"), "%zz%4");
    }
}
