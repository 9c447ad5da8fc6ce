//! Who may use the dashboard: a bearer token or the session cookie it buys
//! (`/login?token=…`), a CSRF token for every POST, and, on loopback, a
//! loopback `Host` (a page on another site that rebinds its DNS name to
//! 127.0.0.1 is then refused, so it can never read the CSRF token).

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{bail, Context, Result};
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub const COOKIE: &str = "edgectl_session";
/// Header carrying the CSRF token on POSTs.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Secrets of one dashboard run.
pub struct Auth {
    /// The operators' token (`--token-file`); `None`: no authentication.
    token: Option<String>,
    /// The session cookie's value, random per run.
    session: String,
    /// The CSRF token, random per run, written into the page.
    pub csrf: String,
    /// The CSP nonce of the page's one script, random per run.
    pub nonce: String,
    /// Listening on loopback: `Host` must name loopback too.
    loopback: bool,
}

/// 32 random bytes from the kernel, as hex.
fn random_hex() -> Result<String> {
    let mut b = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).context("/dev/urandom")?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Equal, in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Auth {
    /// Refuses a non-loopback `listen` without a token file.
    pub fn new(listen: SocketAddr, token_file: Option<&Path>) -> Result<Auth> {
        let token = match token_file {
            Some(p) => {
                let t = std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?.trim().to_owned();
                // URL-safe, so `/login?token=` needs no percent-decoding.
                if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')) {
                    bail!("{}: the token must be at least 16 characters of A-Z, a-z, 0-9, '-', '.', '_', '~'", p.display());
                }
                Some(t)
            }
            None if listen.ip().is_loopback() => None,
            None => bail!("--listen {listen} is not a loopback address: --token-file is required"),
        };
        Ok(Auth { token, session: random_hex()?, csrf: random_hex()?, nonce: random_hex()?, loopback: listen.ip().is_loopback() })
    }

    pub fn required(&self) -> bool {
        self.token.is_some()
    }

    /// The `Set-Cookie` value for a correct `/login` token.
    pub fn login(&self, token: &str) -> Option<String> {
        let t = self.token.as_deref()?;
        same(t, token).then(|| format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", self.session))
    }

    /// Whether a request with these headers is authenticated.
    pub fn allows(&self, authorization: Option<&str>, cookie: Option<&str>) -> bool {
        let Some(token) = &self.token else { return true };
        if let Some(b) = authorization.and_then(|a| a.strip_prefix("Bearer ")) {
            if same(token, b.trim()) {
                return true;
            }
        }
        cookie
            .into_iter()
            .flat_map(|c| c.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .any(|(k, v)| k == COOKIE && same(&self.session, v))
    }

    /// On loopback, `Host` must be a loopback name (DNS rebinding).
    pub fn host_ok(&self, host: Option<&str>) -> bool {
        if !self.loopback {
            return true;
        }
        let Some(h) = host else { return false };
        let name = if let Some(rest) = h.strip_prefix('[') {
            rest.split(']').next().unwrap_or_default()
        } else {
            h.rsplit_once(':').map_or(h, |(n, _)| n)
        };
        name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// A POST is ours: the CSRF header matches and any `Origin` is this
    /// host.
    pub fn csrf_ok(&self, header: Option<&str>, origin: Option<&str>, host: Option<&str>) -> bool {
        let origin_ok = match (origin, host) {
            (None, _) => true,
            (Some(o), Some(h)) => o == format!("http://{h}") || o == format!("https://{h}"),
            (Some(_), None) => false,
        };
        origin_ok && header.is_some_and(|h| same(&self.csrf, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_loopback_needs_a_token() {
        assert!(Auth::new(addr("0.0.0.0:8080"), None).is_err());
        assert!(Auth::new(addr("192.0.2.1:8080"), None).is_err());
        let a = Auth::new(addr("127.0.0.1:8080"), None).unwrap();
        assert!(!a.required() && a.allows(None, None));
        let dir = tempfile::tempdir().unwrap();
        let short = dir.path().join("short");
        std::fs::write(&short, "abc\n").unwrap();
        assert!(Auth::new(addr("0.0.0.0:8080"), Some(&short)).is_err());
        std::fs::write(&short, "long enough but has spaces&amp\n").unwrap();
        assert!(Auth::new(addr("0.0.0.0:8080"), Some(&short)).is_err());
    }

    #[test]
    fn bearer_or_session_cookie() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "s3cret-token-0123456789\n").unwrap();
        let a = Auth::new(addr("0.0.0.0:8080"), Some(&f)).unwrap();
        assert!(a.required());
        assert!(!a.allows(None, None));
        assert!(!a.allows(Some("Bearer wrong"), None));
        assert!(!a.allows(Some("Bearer s3cret-token-012345678"), None), "a prefix is not the token");
        assert!(a.allows(Some("Bearer s3cret-token-0123456789"), None));
        assert!(a.login("nope").is_none());
        let set = a.login("s3cret-token-0123456789").unwrap();
        let pair = set.split(';').next().unwrap();
        assert!(a.allows(None, Some(&format!("a=b; {pair}"))));
        assert!(!a.allows(None, Some(&format!("{COOKIE}=00"))));
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
    }

    #[test]
    fn loopback_host_and_csrf() {
        let a = Auth::new(addr("127.0.0.1:8080"), None).unwrap();
        for h in ["127.0.0.1:8080", "localhost:8080", "[::1]:8080", "localhost"] {
            assert!(a.host_ok(Some(h)), "{h}");
        }
        for h in ["evil.example:8080", "evil.example", "127.0.0.1.evil.example:80"] {
            assert!(!a.host_ok(Some(h)), "{h}");
        }
        assert!(!a.host_ok(None));
        let host = Some("127.0.0.1:8080");
        assert!(a.csrf_ok(Some(&a.csrf), Some("http://127.0.0.1:8080"), host));
        assert!(a.csrf_ok(Some(&a.csrf), None, host));
        assert!(!a.csrf_ok(Some(&a.csrf), Some("http://evil.example"), host));
        assert!(!a.csrf_ok(Some("0"), None, host));
        assert!(!a.csrf_ok(None, None, host));
    }
}
