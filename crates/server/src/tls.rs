//! TLS settings, as ovsdb-server takes them (`lib/stream-ssl.c`: `--private-key`,
//! `--certificate`, `--ca-cert`, `--ssl-protocols`, `--ssl-ciphers`), turned into rustls
//! configurations for `pssl:` listeners and for member-to-member (Raft) connections.
//!
//! Both ends of every connection authenticate: a server requires a client certificate signed by
//! the CA (ovsdb-server does), and a client verifies the server's chain against the same CA.
//! Like Open vSwitch, the server's host name is not checked against its certificate: `ovs-pki`
//! certificates carry a CN such as `hv1 id:<uuid>` and no subjectAltName, so trust comes from
//! the CA alone.
//!
//! Rotation: [`TlsLoader`] remembers the times, size and inode of the three files and
//! reloads them when any changes (checked at most once per [`RELOAD_CHECK_INTERVAL`], on use:
//! every accept and every outgoing handshake asks for the current configuration). A reload that
//! fails (say the key was replaced but not yet the certificate) keeps the previous configuration
//! and is retried on the next change. Established connections keep the configuration they were
//! made with.
//!
//! The settings are plain values so they can later come from the database (`db:` options) and
//! be handed to a new loader or to [`TlsLoader::replace`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme, SupportedCipherSuite, SupportedProtocolVersion,
};

/// How long a client (or a peer member) has to complete its TLS handshake after connecting;
/// one that stalls longer is disconnected with a log line, so it holds no connection slot.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often, at most, the key, certificate and CA files are checked for changes (a `stat` of
/// each, done when a connection is accepted or made).
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Where the key material lives and which protocols and cipher suites to allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM private key (`--private-key`), as `ovs-pki` writes it (`NAME-privkey.pem`).
    pub private_key: PathBuf,
    /// PEM certificate for that key (`--certificate`), optionally followed by its chain.
    pub certificate: PathBuf,
    /// PEM CA certificate(s) peers' certificates must be signed by (`--ca-cert`).
    pub ca_cert: PathBuf,
    /// `--ssl-protocols`, e.g. `TLSv1.2,TLSv1.3`; `None` allows TLS 1.2 and 1.3.
    pub protocols: Option<String>,
    /// `--ssl-ciphers`, an OpenSSL cipher string (e.g. `HIGH:!aNULL:!MD5`); `None` allows every
    /// suite rustls has.
    pub ciphers: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} {}: {reason}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("--ssl-protocols {0:?}: {1}")]
    Protocols(String, String),
    #[error("--ssl-ciphers {0:?}: {1}")]
    Ciphers(String, String),
    #[error("{0}")]
    Config(String),
}

/// Which TLS versions an `--ssl-protocols` value allows. Words are separated by commas or
/// spaces, as ovsdb-server takes them; `TLSv1.2+` means TLS 1.2 and later (the form newer Open
/// vSwitch releases accept). rustls has no TLS 1.0 or 1.1: those words are dropped with a
/// warning when the list names a version rustls has, and refused when it names none.
pub fn parse_protocols(value: &str) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    let err = |why: String| TlsError::Protocols(value.to_string(), why);
    let (mut v12, mut v13) = (false, false);
    let mut unsupported = Vec::new();
    for word in value
        .split([',', ' ', '\t'])
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        match word {
            "TLSv1" | "TLSv1.1" => unsupported.push(word),
            "TLSv1+" | "TLSv1.1+" | "TLSv1.2+" => {
                v12 = true;
                v13 = true;
            }
            "TLSv1.2" => v12 = true,
            "TLSv1.3" | "TLSv1.3+" => v13 = true,
            _ => {
                return Err(err(format!(
                    "unknown protocol {word:?} (known: TLSv1.2, TLSv1.3, TLSv1.2+)"
                )))
            }
        }
    }
    if !v12 && !v13 {
        return Err(err(if unsupported.is_empty() {
            "names no protocol".into()
        } else {
            format!(
                "{} not supported (Halyard's TLS library supports TLSv1.2 and TLSv1.3 only)",
                unsupported.join(", ")
            )
        }));
    }
    if !unsupported.is_empty() {
        tracing::warn!(
            "--ssl-protocols {value:?}: ignoring {} (only TLSv1.2 and TLSv1.3 are supported)",
            unsupported.join(", ")
        );
    }
    let mut out = Vec::new();
    if v13 {
        out.push(&rustls::version::TLS13);
    }
    if v12 {
        out.push(&rustls::version::TLS12);
    }
    Ok(out)
}

/// One cipher suite rustls offers, with the names and properties an OpenSSL cipher string
/// selects it by.
struct Suite {
    suite: SupportedCipherSuite,
    openssl: &'static str,
    /// OpenSSL's aliases that match it (besides its name and the catch-alls).
    tags: &'static [&'static str],
}

fn suites() -> Vec<Suite> {
    use rustls::crypto::ring::cipher_suite as cs;
    let v = |suite, openssl, tags| Suite {
        suite,
        openssl,
        tags,
    };
    vec![
        v(
            cs::TLS13_AES_256_GCM_SHA384,
            "TLS_AES_256_GCM_SHA384",
            &["TLSv1.3", "AES", "AES256", "AESGCM", "SHA384"],
        ),
        v(
            cs::TLS13_AES_128_GCM_SHA256,
            "TLS_AES_128_GCM_SHA256",
            &["TLSv1.3", "AES", "AES128", "AESGCM", "SHA256"],
        ),
        v(
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            "TLS_CHACHA20_POLY1305_SHA256",
            &["TLSv1.3", "CHACHA20", "SHA256"],
        ),
        v(
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            "ECDHE-ECDSA-AES256-GCM-SHA384",
            &["aECDSA", "ECDSA", "AES", "AES256", "AESGCM", "SHA384"],
        ),
        v(
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            &["aECDSA", "ECDSA", "AES", "AES128", "AESGCM", "SHA256"],
        ),
        v(
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            "ECDHE-ECDSA-CHACHA20-POLY1305",
            &["aECDSA", "ECDSA", "CHACHA20", "SHA256"],
        ),
        v(
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            "ECDHE-RSA-AES256-GCM-SHA384",
            &["aRSA", "RSA", "AES", "AES256", "AESGCM", "SHA384"],
        ),
        v(
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            "ECDHE-RSA-AES128-GCM-SHA256",
            &["aRSA", "RSA", "AES", "AES128", "AESGCM", "SHA256"],
        ),
        v(
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            "ECDHE-RSA-CHACHA20-POLY1305",
            &["aRSA", "RSA", "CHACHA20", "SHA256"],
        ),
    ]
}

/// OpenSSL aliases that select every TLS 1.2 suite rustls has (all are ECDHE, AEAD, strong).
const ALL_TLS12: &[&str] = &[
    "ALL",
    "DEFAULT",
    "HIGH",
    "TLSv1.2",
    "ECDHE",
    "EECDH",
    "kECDHE",
    "kEECDH",
    "AEAD",
    "FIPS",
    "SUITEB128",
    "SUITEB192",
];

/// OpenSSL aliases that exist but select nothing rustls has (weak or unsupported kinds).
const NONE_OF_OURS: &[&str] = &[
    "COMPLEMENTOFDEFAULT",
    "COMPLEMENTOFALL",
    "MEDIUM",
    "LOW",
    "EXPORT",
    "EXP",
    "NULL",
    "eNULL",
    "aNULL",
    "MD5",
    "RC4",
    "DES",
    "3DES",
    "SHA1",
    "SHA",
    "IDEA",
    "SEED",
    "CAMELLIA",
    "ARIA",
    "PSK",
    "SRP",
    "kRSA",
    "DH",
    "DHE",
    "EDH",
    "kDHE",
    "kEDH",
    "ADH",
    "AECDH",
    "aDSS",
    "DSS",
    "CBC",
    "SSLv3",
    "TLSv1",
    "TLSv1.0",
    "AESCCM",
    "AESCCM8",
    "CCM",
    "GOST",
];

fn suite_matches(s: &Suite, word: &str) -> Option<bool> {
    if word == s.openssl || s.tags.contains(&word) {
        return Some(true);
    }
    let tls12 = matches!(s.suite, SupportedCipherSuite::Tls12(_));
    if tls12 && ALL_TLS12.contains(&word) {
        return Some(true);
    }
    // A TLS 1.3 name in rustls's spelling (TLS13_AES_128_GCM_SHA256) or the IANA one.
    let rustls_name = format!("{:?}", s.suite.suite());
    if word == rustls_name || word.replace("TLS13_", "TLS_") == s.openssl {
        return Some(true);
    }
    if NONE_OF_OURS.contains(&word) || ALL_TLS12.contains(&word) {
        return Some(false);
    }
    None
}

/// The suites an `--ssl-ciphers` value allows. As with ovsdb-server (which hands the value to
/// OpenSSL's `SSL_CTX_set_cipher_list`), the string selects TLS 1.2 suites and TLS 1.3 suites
/// stay enabled unless the string names TLS 1.3 suites itself. Elements are separated by `:`,
/// `,` or spaces; `!X` removes X for good, `-X` removes it, `+X` (reordering) and `@...`
/// directives are accepted and change nothing; `A+B` selects what matches both. A name rustls
/// has no suite for (a CBC or RSA-key-exchange suite, an unknown word) selects nothing, as
/// OpenSSL ignores words it does not know, with a warning. A string that leaves no TLS 1.2
/// suite is refused (OpenSSL refuses it too: "no cipher match").
pub fn parse_ciphers(value: &str) -> Result<Vec<SupportedCipherSuite>, TlsError> {
    let err = |why: String| TlsError::Ciphers(value.to_string(), why);
    let all = suites();
    let mut on = vec![false; all.len()];
    let mut banned = vec![false; all.len()];
    let mut named_tls13 = false;
    let mut unknown = Vec::new();
    for element in value
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        if element.starts_with('@') {
            continue;
        }
        let (op, body) = match element.as_bytes()[0] {
            b'!' | b'-' | b'+' => (element.as_bytes()[0], &element[1..]),
            _ => (b' ', element),
        };
        for word in body.split('+') {
            let known = all.iter().any(|s| suite_matches(s, word).is_some());
            if !known && !unknown.contains(&word) {
                unknown.push(word);
            }
        }
        let selected: Vec<usize> = (0..all.len())
            .filter(|&i| {
                body.split('+')
                    .all(|word| suite_matches(&all[i], word) == Some(true))
            })
            .collect();
        for i in selected {
            match op {
                b'!' => {
                    banned[i] = true;
                    on[i] = false;
                }
                b'-' => on[i] = false,
                b'+' => {}
                _ => {
                    if !banned[i] {
                        on[i] = true;
                        if matches!(all[i].suite, SupportedCipherSuite::Tls13(_)) {
                            named_tls13 = true;
                        }
                    }
                }
            }
        }
    }
    if !unknown.is_empty() {
        tracing::warn!(
            "--ssl-ciphers {value:?}: no suite Halyard supports matches {}",
            unknown.join(", ")
        );
    }
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    for (i, s) in all.iter().enumerate() {
        let tls13 = matches!(s.suite, SupportedCipherSuite::Tls13(_));
        let keep = if tls13 && !named_tls13 {
            !banned[i]
        } else {
            on[i]
        };
        if keep {
            out.push(s.suite);
        }
    }
    if !out
        .iter()
        .any(|s| matches!(s, SupportedCipherSuite::Tls12(_)))
        && !named_tls13
    {
        return Err(err(format!(
            "selects no cipher suite Halyard supports (TLS 1.2 suites available: {})",
            all.iter()
                .filter(|s| matches!(s.suite, SupportedCipherSuite::Tls12(_)))
                .map(|s| s.openssl)
                .collect::<Vec<_>>()
                .join(":")
        )));
    }
    Ok(out)
}

/// The provider (ring) restricted to the configured cipher suites, and the versions allowed.
fn provider_for(
    settings: &TlsSettings,
) -> Result<(Arc<CryptoProvider>, Vec<&'static SupportedProtocolVersion>), TlsError> {
    let versions = match &settings.protocols {
        Some(p) => parse_protocols(p)?,
        None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    };
    // ring rather than aws-lc-rs: no C toolchain beyond cc and no cmake to build. Its provider
    // lacks the post-quantum key exchange, which neither OVN's clients nor ovsdb-server offer.
    #[allow(deprecated)]
    let mut provider = ring::default_provider();
    if let Some(c) = &settings.ciphers {
        provider.cipher_suites = parse_ciphers(c)?;
    }
    let usable = provider
        .cipher_suites
        .iter()
        .any(|s| versions.iter().any(|v| s.version().version == v.version));
    if !usable {
        return Err(TlsError::Config(format!(
            "--ssl-protocols {:?} and --ssl-ciphers {:?} leave no usable cipher suite",
            settings.protocols.as_deref().unwrap_or("TLSv1.2,TLSv1.3"),
            settings.ciphers.as_deref().unwrap_or("")
        )));
    }
    Ok((Arc::new(provider), versions))
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn pem_err(what: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn load_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(what, path, e))?;
    if certs.is_empty() {
        return Err(pem_err(what, path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("private key", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| pem_err("private key", path, e))
}

/// The two configurations built from one reading of the files.
#[derive(Clone)]
pub struct TlsConfigs {
    /// For accepting: requires and verifies a client certificate.
    pub server: Arc<ServerConfig>,
    /// For dialling a member: presents our certificate, verifies the peer's chain.
    pub client: Arc<ClientConfig>,
    /// Serial number (hex) of our certificate, for log lines.
    pub serial: String,
}

/// Reads the files named by `settings` and builds both configurations.
pub fn build(settings: &TlsSettings) -> Result<TlsConfigs, TlsError> {
    let (provider, versions) = provider_for(settings)?;
    let key = load_key(&settings.private_key)?;
    let chain = load_certs("certificate", &settings.certificate)?;
    let mut roots = RootCertStore::empty();
    for ca in load_certs("CA certificate", &settings.ca_cert)? {
        roots
            .add(ca)
            .map_err(|e| pem_err("CA certificate", &settings.ca_cert, e))?;
    }
    let roots = Arc::new(roots);
    let serial = x509_parser::parse_x509_certificate(&chain[0])
        .map(|(_, c)| c.raw_serial_as_string().replace(':', ""))
        .map_err(|e| pem_err("certificate", &settings.certificate, e))?;
    let mismatch = |e: rustls::Error| {
        TlsError::Config(format!(
            "private key {} and certificate {} do not go together: {e}",
            settings.private_key.display(),
            settings.certificate.display()
        ))
    };

    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| pem_err("CA certificate", &settings.ca_cert, e))?;
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(mismatch)?;

    let server_verifier = CaOnlyVerifier {
        inner: rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| pem_err("CA certificate", &settings.ca_cert, e))?,
        algorithms: provider.signature_verification_algorithms,
    };
    let client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(server_verifier))
        .with_client_auth_cert(chain, key)
        .map_err(mismatch)?;
    Ok(TlsConfigs {
        server: Arc::new(server),
        client: Arc::new(client),
        serial,
    })
}

/// Verifies a server's chain against the CA, as Open vSwitch does, without matching its
/// certificate to the host name dialled (see the module header).
#[derive(Debug)]
struct CaOnlyVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for CaOnlyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name is checked last, after the chain and validity: only that result is waived.
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The subject CN of a DER certificate (ovsdb-server's peer identity), if it has one.
pub fn common_name(cert: &[u8]) -> Option<String> {
    let (_, c) = x509_parser::parse_x509_certificate(cert).ok()?;
    let cn = c.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// What a file looked like when last read: modification time, status-change time, size and
/// inode. A change in any means it was rewritten or replaced; the status-change time catches a
/// copy that preserved the old modification time (`cp -p`, some secret managers).
type Stamp = Option<(SystemTime, i64, i64, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.modified().ok()?,
        m.ctime(),
        m.ctime_nsec(),
        m.len(),
        m.ino(),
    ))
}

struct Loaded {
    settings: TlsSettings,
    configs: TlsConfigs,
    /// Stamps of (key, certificate, CA) the current configs were built from.
    stamps: [Stamp; 3],
    /// Stamps of a reading that failed, so a broken set of files is reported once.
    failed: Option<[Stamp; 3]>,
    checked: Instant,
}

/// The current TLS configurations, reloaded when the files change (see the module header).
pub struct TlsLoader {
    state: Mutex<Loaded>,
}

impl std::fmt::Debug for TlsLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock().unwrap();
        f.debug_struct("TlsLoader")
            .field("settings", &s.settings)
            .finish()
    }
}

fn stamps(s: &TlsSettings) -> [Stamp; 3] {
    [
        stamp(&s.private_key),
        stamp(&s.certificate),
        stamp(&s.ca_cert),
    ]
}

impl TlsLoader {
    /// Reads the files now; any problem is an error (a member must not start half configured).
    pub fn new(settings: TlsSettings) -> Result<Arc<TlsLoader>, TlsError> {
        let before = stamps(&settings);
        let configs = build(&settings)?;
        tracing::info!(
            "TLS: certificate {} (serial {}), CA {}",
            settings.certificate.display(),
            configs.serial,
            settings.ca_cert.display()
        );
        Ok(Arc::new(TlsLoader {
            state: Mutex::new(Loaded {
                settings,
                configs,
                stamps: before,
                failed: None,
                checked: Instant::now(),
            }),
        }))
    }

    /// New settings (e.g. from the database): used from the next connection on if they load.
    pub fn replace(&self, settings: TlsSettings) -> Result<(), TlsError> {
        let before = stamps(&settings);
        let configs = build(&settings)?;
        let mut s = self.state.lock().unwrap();
        *s = Loaded {
            settings,
            configs,
            stamps: before,
            failed: None,
            checked: Instant::now(),
        };
        Ok(())
    }

    pub fn settings(&self) -> TlsSettings {
        self.state.lock().unwrap().settings.clone()
    }

    /// The configurations to use for a connection starting now.
    pub fn current(&self) -> TlsConfigs {
        let mut s = self.state.lock().unwrap();
        if s.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            s.checked = Instant::now();
            let now = stamps(&s.settings);
            if now != s.stamps && s.failed.as_ref() != Some(&now) {
                match build(&s.settings) {
                    Ok(configs) => {
                        tracing::info!(
                            "TLS: reloaded {} (serial {}) after a change of the key, certificate or CA file",
                            s.settings.certificate.display(),
                            configs.serial
                        );
                        s.configs = configs;
                        s.stamps = now;
                        s.failed = None;
                    }
                    Err(e) => {
                        tracing::warn!(
                            "TLS: the key, certificate or CA file changed but cannot be used ({e}); \
                             keeping the previous ones until the files change again"
                        );
                        s.failed = Some(now);
                    }
                }
            }
        }
        s.configs.clone()
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current().server
    }

    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.current().client
    }
}

/// A short explanation of a failed server-side handshake, for the log line.
pub fn describe_handshake_error(e: &std::io::Error) -> String {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidMessage(_))
        | Some(rustls::Error::InappropriateMessage { .. }) => {
            format!("{e} (not a TLS client?)")
        }
        Some(rustls::Error::NoCertificatesPresented) => {
            format!("{e} (clients must present a certificate signed by the CA)")
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols() {
        assert_eq!(parse_protocols("TLSv1.2,TLSv1.3").unwrap().len(), 2);
        assert_eq!(parse_protocols("TLSv1.2").unwrap().len(), 1);
        assert_eq!(parse_protocols("TLSv1 TLSv1.1 TLSv1.2").unwrap().len(), 1);
        assert_eq!(parse_protocols("TLSv1.2+").unwrap().len(), 2);
        let e = parse_protocols("TLSv1,TLSv1.1").unwrap_err().to_string();
        assert!(e.contains("not supported"), "{e}");
        let e = parse_protocols("SSLv3").unwrap_err().to_string();
        assert!(e.contains("unknown protocol"), "{e}");
        assert!(parse_protocols("").is_err());
    }

    fn names(v: &[SupportedCipherSuite]) -> Vec<String> {
        v.iter().map(|s| format!("{:?}", s.suite())).collect()
    }

    #[test]
    fn ciphers() {
        // ovsdb-server's default keeps every suite.
        assert_eq!(parse_ciphers("HIGH:!aNULL:!MD5").unwrap().len(), 9);
        let only = parse_ciphers("ECDHE-RSA-AES128-GCM-SHA256").unwrap();
        assert_eq!(
            names(&only),
            [
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
            ]
        );
        let no_chacha = parse_ciphers("HIGH:!CHACHA20").unwrap();
        assert!(names(&no_chacha).iter().all(|n| !n.contains("CHACHA")));
        let rsa_gcm = parse_ciphers("aRSA+AESGCM").unwrap();
        assert_eq!(rsa_gcm.len(), 3 + 2);
        let e = parse_ciphers("RC4:3DES").unwrap_err().to_string();
        assert!(e.contains("selects no cipher suite"), "{e}");
        let e = parse_ciphers("BOGUS-CIPHER").unwrap_err().to_string();
        assert!(e.contains("selects no cipher suite"), "{e}");
        // Names of suites rustls lacks are skipped when others remain.
        let cbc = parse_ciphers("ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES256-GCM-SHA384").unwrap();
        assert_eq!(cbc.len(), 3 + 1);
        let t13 = parse_ciphers("TLS_AES_128_GCM_SHA256").unwrap();
        assert_eq!(names(&t13), ["TLS13_AES_128_GCM_SHA256"]);
    }
}
