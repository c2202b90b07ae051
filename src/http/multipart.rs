//! `multipart/*` bodies (RFC 2046 §5.1): split into parts, each with its header fields
//! and content. Used to turn a multipart request into a batch, one message per part.

/// One part: header fields and content, borrowed from the body.
#[derive(Debug, PartialEq, Eq)]
pub struct Part<'b> {
    pub headers: Vec<(&'b str, &'b str)>,
    pub body: &'b [u8],
}

/// The `boundary` parameter of a multipart Content-Type, if it is one.
pub fn boundary(content_type: &str) -> Option<&str> {
    // The prefix first, in place: this runs for every request body.
    let content_type = content_type.trim_start();
    let is_multipart = content_type
        .get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("multipart/"));
    if !is_multipart {
        return None;
    }
    let params = content_type.split_once(';').map_or("", |(_, p)| p);
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"'))
            .filter(|b| !b.is_empty() && b.len() <= 70)
    })
}

/// Splits `body` at `--boundary` delimiter lines. Errors on a body with no delimiter,
/// no closing delimiter, or a part whose header block is malformed.
pub fn parse<'b>(body: &'b [u8], boundary: &str) -> Result<Vec<Part<'b>>, &'static str> {
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let find = |hay: &[u8], from: usize| -> Option<usize> {
        hay.get(from..)?
            .windows(d.len())
            .position(|w| w == d)
            .map(|p| p + from)
    };
    // The first delimiter may follow a preamble; later ones follow a CRLF.
    let mut pos = find(body, 0).ok_or("no multipart delimiter")?;
    let mut parts = Vec::new();
    loop {
        let after = pos + d.len();
        if body.get(after..after + 2) == Some(b"--") {
            return if parts.is_empty() {
                Err("multipart body has no parts")
            } else {
                Ok(parts)
            };
        }
        // Skip transport padding and the CRLF that ends the delimiter line.
        let line_end = find_crlf(body, after).ok_or("unterminated multipart delimiter")?;
        let start = line_end + 2;
        let mut next = start;
        let end = loop {
            let p = find(body, next).ok_or("multipart body has no closing delimiter")?;
            if p >= 2 && &body[p - 2..p] == b"\r\n" && p - 2 >= start {
                break p;
            }
            next = p + 1;
        };
        let part = &body[start..end - 2];
        parts.push(parse_part(part)?);
        pos = end;
    }
}

fn find_crlf(b: &[u8], from: usize) -> Option<usize> {
    b.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + from)
}

fn parse_part(part: &[u8]) -> Result<Part<'_>, &'static str> {
    let (head, body) = if part.starts_with(b"\r\n") {
        (&part[..0], &part[2..])
    } else {
        let split = part
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("multipart part has no header terminator")?;
        (&part[..split], &part[split + 4..])
    };
    let head = std::str::from_utf8(head).map_err(|_| "multipart part headers are not UTF-8")?;
    let mut headers = Vec::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once(':')
            .ok_or("malformed multipart part header")?;
        headers.push((k.trim(), v.trim()));
    }
    Ok(Part { headers, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_parts_with_headers() {
        let body = b"preamble\r\n--XYZ\r\nContent-Type: text/plain\r\n\r\nfirst\r\n--XYZ\r\n\r\nsec\r\nond\r\n--XYZ--\r\n";
        let parts = parse(body, "XYZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].headers, [("Content-Type", "text/plain")]);
        assert_eq!(parts[0].body, b"first");
        assert_eq!(parts[1].body, b"sec\r\nond");
    }

    #[test]
    fn boundary_parameter() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"ab c\""),
            Some("ab c")
        );
        assert_eq!(boundary("Multipart/mixed;boundary=x"), Some("x"));
        assert_eq!(boundary("application/json"), None);
        assert_eq!(boundary("multipart/mixed"), None);
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(parse(b"no delimiter", "X").is_err());
        assert!(parse(b"--X\r\n\r\nbody without end", "X").is_err());
        assert!(parse(b"--X\r\nBadHeader\r\n\r\nb\r\n--X--", "X").is_err());
        assert!(parse(b"--X--", "X").is_err());
    }
}
