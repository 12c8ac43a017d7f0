//! Passive remotes, named as ovsdb-server's `--remote` option names them (`lib/stream.c`,
//! docs/ovsdb-protocol.md §1.1): `ptcp:PORT[:IP]`, `pssl:PORT[:IP]` and `punix:PATH`. `ptcp:` and
//! `pssl:` bind IPv4 only unless the IP says otherwise; an IPv6 address is written in brackets
//! (`ptcp:6641:[::1]`). With no port they listen on the OVSDB port 6640, as ovsdb-server does.
//! A `pssl:` listener accepts TCP connections; the TLS handshake is the server's (see `tls`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// The IANA port for OVSDB, used by `ptcp:` with no port.
pub const OVSDB_PORT: u16 = 6640;

/// A place to listen for clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    Tcp(SocketAddr),
    Ssl(SocketAddr),
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "{0}: unknown remote type (expected \"ptcp:PORT[:IP]\", \"pssl:PORT[:IP]\" or \"punix:PATH\")"
    )]
    UnknownType(String),
    #[error(
        "{0}: active remotes (tcp:, unix:, ssl:) cannot be listened on; use ptcp:, pssl: or punix:"
    )]
    Active(String),
    #[error("{0}: bad port number {1:?}")]
    BadPort(String, String),
    #[error("{0}: bad IP address {1:?} (write IPv6 addresses in brackets, e.g. [::1])")]
    BadIp(String, String),
    #[error("{0}: missing socket path")]
    EmptyPath(String),
}

impl FromStr for Remote {
    type Err = RemoteError;

    fn from_str(name: &str) -> Result<Remote, RemoteError> {
        let err_name = || name.to_string();
        let Some((kind, rest)) = name.split_once(':') else {
            return Err(RemoteError::UnknownType(err_name()));
        };
        match kind {
            "ptcp" | "pssl" => {
                let (port, ip) = match rest.split_once(':') {
                    Some((p, ip)) => (p, Some(ip)),
                    None => (rest, None),
                };
                let port = if port.is_empty() {
                    OVSDB_PORT
                } else {
                    port.parse::<u16>()
                        .map_err(|_| RemoteError::BadPort(err_name(), port.to_string()))?
                };
                let ip = match ip {
                    None | Some("") => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    Some(ip) => {
                        let bare = match ip.strip_prefix('[') {
                            Some(inner) => inner
                                .strip_suffix(']')
                                .ok_or_else(|| RemoteError::BadIp(err_name(), ip.to_string()))?,
                            None => ip,
                        };
                        let parsed: IpAddr = bare
                            .parse()
                            .map_err(|_| RemoteError::BadIp(err_name(), ip.to_string()))?;
                        // An unbracketed IPv6 address is ambiguous with the port separator.
                        if parsed.is_ipv6() && !ip.starts_with('[') {
                            return Err(RemoteError::BadIp(err_name(), ip.to_string()));
                        }
                        parsed
                    }
                };
                let addr = SocketAddr::new(ip, port);
                Ok(if kind == "ptcp" {
                    Remote::Tcp(addr)
                } else {
                    Remote::Ssl(addr)
                })
            }
            "punix" => {
                if rest.is_empty() {
                    return Err(RemoteError::EmptyPath(err_name()));
                }
                Ok(Remote::Unix(PathBuf::from(rest)))
            }
            "tcp" | "unix" | "ssl" => Err(RemoteError::Active(err_name())),
            _ => Err(RemoteError::UnknownType(err_name())),
        }
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Remote::Tcp(a) if a.is_ipv6() => write!(f, "ptcp:{}:[{}]", a.port(), a.ip()),
            Remote::Tcp(a) => write!(f, "ptcp:{}:{}", a.port(), a.ip()),
            Remote::Ssl(a) if a.is_ipv6() => write!(f, "pssl:{}:[{}]", a.port(), a.ip()),
            Remote::Ssl(a) => write!(f, "pssl:{}:{}", a.port(), a.ip()),
            Remote::Unix(p) => write!(f, "punix:{}", p.display()),
        }
    }
}

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    Tcp(TcpListener),
    /// Accepts TCP connections that must then complete a TLS handshake.
    Ssl(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// An accepted client connection.
#[derive(Debug)]
pub enum Connection {
    Tcp(TcpStream),
    /// Not yet through its TLS handshake.
    Ssl(TcpStream),
    Unix(UnixStream),
}

impl Remote {
    /// Binds the socket. For `punix:` a stale socket file left by a previous process is
    /// removed first, as ovsdb-server does; any other kind of file is left alone.
    pub async fn bind(&self) -> std::io::Result<Listener> {
        match self {
            Remote::Tcp(addr) => Ok(Listener::Tcp(TcpListener::bind(addr).await?)),
            Remote::Ssl(addr) => Ok(Listener::Ssl(TcpListener::bind(addr).await?)),
            Remote::Unix(path) => {
                remove_stale_socket(path);
                Ok(Listener::Unix(UnixListener::bind(path)?, path.clone()))
            }
        }
    }
}

fn remove_stale_socket(path: &Path) {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Listener {
    /// The name clients use to reach this listener, e.g. `ptcp:6641:127.0.0.1` with the
    /// actual port when 0 was asked for.
    pub fn local_name(&self) -> String {
        match self {
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => Remote::Tcp(a).to_string(),
                Err(_) => "ptcp:?".into(),
            },
            Listener::Ssl(l) => match l.local_addr() {
                Ok(a) => Remote::Ssl(a).to_string(),
                Err(_) => "pssl:?".into(),
            },
            Listener::Unix(_, p) => Remote::Unix(p.clone()).to_string(),
        }
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Listener::Tcp(l) | Listener::Ssl(l) => l.local_addr().ok(),
            Listener::Unix(..) => None,
        }
    }

    /// Accepts one connection; the string names the peer for log lines (`tcp:IP:PORT` or
    /// `ssl:IP:PORT`, `unix:PATH`, like ovsdb-server).
    pub async fn accept(&self) -> std::io::Result<(Connection, String)> {
        match self {
            Listener::Tcp(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Connection::Tcp(s), format!("tcp:{peer}")))
            }
            Listener::Ssl(l) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                Ok((Connection::Ssl(s), format!("ssl:{peer}")))
            }
            Listener::Unix(l, p) => {
                let (s, _) = l.accept().await?;
                Ok((Connection::Unix(s), format!("unix:{}", p.display())))
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix(_, p) = self {
            remove_stale_socket(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let ok: Vec<(&str, Remote)> = vec![
            ("ptcp:6641", Remote::Tcp("0.0.0.0:6641".parse().unwrap())),
            (
                "ptcp:6641:127.0.0.1",
                Remote::Tcp("127.0.0.1:6641".parse().unwrap()),
            ),
            (
                "ptcp:0:127.0.0.1",
                Remote::Tcp("127.0.0.1:0".parse().unwrap()),
            ),
            ("ptcp:", Remote::Tcp("0.0.0.0:6640".parse().unwrap())),
            ("pssl:6641", Remote::Ssl("0.0.0.0:6641".parse().unwrap())),
            (
                "pssl:6641:[::1]",
                Remote::Ssl("[::1]:6641".parse().unwrap()),
            ),
            ("ptcp:6641:[::]", Remote::Tcp("[::]:6641".parse().unwrap())),
            (
                "ptcp:6641:[::1]",
                Remote::Tcp("[::1]:6641".parse().unwrap()),
            ),
            (
                "punix:/var/run/ovn/ovnnb_db.sock",
                Remote::Unix("/var/run/ovn/ovnnb_db.sock".into()),
            ),
        ];
        for (s, want) in ok {
            assert_eq!(s.parse::<Remote>(), Ok(want), "{s}");
        }
        let bad: Vec<(&str, RemoteError)> = vec![
            ("6641", RemoteError::UnknownType("6641".into())),
            ("xtcp:1", RemoteError::UnknownType("xtcp:1".into())),
            (
                "tcp:127.0.0.1:6641",
                RemoteError::Active("tcp:127.0.0.1:6641".into()),
            ),
            ("unix:/x", RemoteError::Active("unix:/x".into())),
            (
                "ptcp:70000",
                RemoteError::BadPort("ptcp:70000".into(), "70000".into()),
            ),
            (
                "ptcp:abc",
                RemoteError::BadPort("ptcp:abc".into(), "abc".into()),
            ),
            (
                "ptcp:1:300.1.1.1",
                RemoteError::BadIp("ptcp:1:300.1.1.1".into(), "300.1.1.1".into()),
            ),
            (
                "ptcp:1:::1",
                RemoteError::BadIp("ptcp:1:::1".into(), "::1".into()),
            ),
            (
                "ptcp:1:[::1",
                RemoteError::BadIp("ptcp:1:[::1".into(), "[::1".into()),
            ),
            ("punix:", RemoteError::EmptyPath("punix:".into())),
        ];
        for (s, want) in bad {
            let got = s.parse::<Remote>();
            assert_eq!(got, Err(want), "{s}");
            // Messages name the remote so a bad command line is easy to fix.
            assert!(got.unwrap_err().to_string().starts_with(s), "{s}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "ptcp:6641:127.0.0.1",
            "ptcp:6641:[::1]",
            "pssl:6641:127.0.0.1",
            "punix:/tmp/x.sock",
        ] {
            assert_eq!(s.parse::<Remote>().unwrap().to_string(), s);
        }
    }

    #[tokio::test]
    async fn bind_tcp_and_unix() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("db.sock");
        // A stale socket file from a previous run must not prevent binding.
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        assert!(sock.exists());
        let u = Remote::Unix(sock.clone()).bind().await.unwrap();
        let t = "ptcp:0:127.0.0.1"
            .parse::<Remote>()
            .unwrap()
            .bind()
            .await
            .unwrap();
        let port = t.local_addr().unwrap().port();
        assert_ne!(port, 0);
        assert_eq!(t.local_name(), format!("ptcp:{port}:127.0.0.1"));
        let c = tokio::net::UnixStream::connect(&sock).await.unwrap();
        let (_conn, peer) = u.accept().await.unwrap();
        assert!(peer.starts_with("unix:"));
        drop(c);
        drop(u);
        assert!(
            !sock.exists(),
            "socket file is removed when the listener goes away"
        );
    }
}
