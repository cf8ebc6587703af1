//! The cluster's certificate authority, as kubeadm and k3s lay it out: a CA made on the
//! first start of a data dir, a serving certificate for the API server's addresses and
//! names, and client certificates whose subject is the identity (CN = user name,
//! O = groups), which is how kube-apiserver reads client certificates.
//!
//! Files live in `<data dir>/pki/`; every key is written mode 0600 before any byte of it,
//! and every file is replaced atomically (write to a temporary name, fsync, rename).

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// Failures, each naming the file or step involved.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Certificate { what: String, source: rcgen::Error },
    #[error("{0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, PkiError>;

/// How long certificates are valid. The CA lives ten years, as kubeadm's; leaves one year,
/// and the serving certificate is re-issued on every start.
const CA_DAYS: i64 = 3650;
const LEAF_DAYS: i64 = 365;

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct Credentials {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").finish_non_exhaustive()
    }
}

/// Who a client certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub user: String,
    pub groups: Vec<String>,
}

/// The CA of one cluster.
pub struct Authority {
    dir: PathBuf,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    /// Open the CA in `dir` (`ca.crt`, `ca.key`), making it on first use.
    pub fn load_or_create(dir: &Path, cluster_name: &str) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.into(),
            source,
        })?;
        let cert_path = dir.join("ca.crt");
        let key_path = dir.join("ca.key");
        if !cert_path.exists() {
            let key =
                KeyPair::generate().map_err(|source| cert_err("generating the CA key", source))?;
            let mut params = CertificateParams::new(Vec::<String>::new())
                .map_err(|source| cert_err("CA parameters", source))?;
            let mut name = DistinguishedName::new();
            name.push(DnType::CommonName, format!("{cluster_name}-ca"));
            params.distinguished_name = name;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            validity(&mut params, CA_DAYS);
            let cert = params
                .self_signed(&key)
                .map_err(|source| cert_err("self-signing the CA", source))?;
            // Key first: a crash between the two leaves no certificate without its key.
            write_secret(&key_path, key.serialize_pem().as_bytes())?;
            write_public(&cert_path, cert.pem().as_bytes())?;
        }
        let ca_pem = read(&cert_path)?;
        let key_pem = read(&key_path)?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|source| cert_err(&format!("reading {}", key_path.display()), source))?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key)
            .map_err(|source| cert_err(&format!("reading {}", cert_path.display()), source))?;
        Ok(Authority {
            dir: dir.to_path_buf(),
            ca_pem,
            issuer,
        })
    }

    /// The CA certificate, PEM, for clients to trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A serving certificate for `dns_names` and `ips`.
    pub fn issue_server(
        &self,
        common_name: &str,
        dns_names: &[String],
        ips: &[IpAddr],
    ) -> Result<Credentials> {
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|source| cert_err("server parameters", source))?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        for dns in dns_names {
            let valid = !dns.is_empty()
                && dns.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                return Err(PkiError::Invalid(format!(
                    "{dns:?} is not a valid DNS name for a certificate"
                )));
            }
            let dns = dns.clone().try_into().map_err(|_| {
                PkiError::Invalid(format!("{dns:?} is not a valid DNS name for a certificate"))
            })?;
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, LEAF_DAYS, "the serving certificate")
    }

    /// A client certificate for `subject` (CN = user, O = its group). One group at most:
    /// rcgen writes one value per attribute type, and every identity Podium issues
    /// (admin in system:masters, a node in system:nodes, a component) has one.
    pub fn issue_client(&self, subject: &Subject) -> Result<Credentials> {
        if subject.groups.len() > 1 {
            return Err(PkiError::Invalid(format!(
                "a client certificate carries one group; {} has {}",
                subject.user,
                subject.groups.len()
            )));
        }
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|source| cert_err("client parameters", source))?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, subject.user.as_str());
        for group in &subject.groups {
            name.push(DnType::OrganizationName, group.as_str());
        }
        params.distinguished_name = name;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(
            params,
            LEAF_DAYS,
            &format!("a client certificate for {}", subject.user),
        )
    }

    fn sign(&self, mut params: CertificateParams, days: i64, what: &str) -> Result<Credentials> {
        validity(&mut params, days);
        let key = KeyPair::generate().map_err(|source| cert_err(what, source))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| cert_err(what, source))?;
        Ok(Credentials {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Write `credentials` as `<name>.crt` and `<name>.key` in the PKI dir.
    pub fn save(&self, name: &str, credentials: &Credentials) -> Result<(PathBuf, PathBuf)> {
        let cert = self.dir.join(format!("{name}.crt"));
        let key = self.dir.join(format!("{name}.key"));
        write_secret(&key, credentials.key_pem.as_bytes())?;
        write_public(&cert, credentials.cert_pem.as_bytes())?;
        Ok((cert, key))
    }
}

/// The subject of a DER client certificate: CN is the user, each O a group.
pub fn subject_of(cert_der: &[u8]) -> Result<Subject> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| PkiError::Invalid(format!("client certificate: {e}")))?;
    let subject = cert.subject();
    let user = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or_else(|| PkiError::Invalid("client certificate has no common name".into()))?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Ok(Subject { user, groups })
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks that differ a little between hosts.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

fn cert_err(what: &str, source: rcgen::Error) -> PkiError {
    PkiError::Certificate {
        what: what.to_string(),
        source,
    }
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.into(),
        source,
    })
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes, 0o644)
}

/// The key that signs ServiceAccount tokens, in `dir` (`sa.key` 0600 and `sa.pub`, as
/// kubeadm names them), made on first use: an ECDSA P-256 key (ES256), as PKCS#8 and SPKI
/// PEM.
pub fn service_account_key(dir: &Path) -> Result<(String, String)> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.into(),
        source,
    })?;
    let (private_path, public_path) = (dir.join("sa.key"), dir.join("sa.pub"));
    if let (Ok(private), Ok(public)) = (
        fs::read_to_string(&private_path),
        fs::read_to_string(&public_path),
    ) {
        return Ok((private, public));
    }
    let (private, public) = service_account_key_pair()?;
    write_secret(&private_path, private.as_bytes())?;
    write_public(&public_path, public.as_bytes())?;
    Ok((private, public))
}

/// A new service account key pair (ECDSA P-256): PKCS#8 and SPKI PEM.
pub fn service_account_key_pair() -> Result<(String, String)> {
    let key = KeyPair::generate().map_err(|source| PkiError::Certificate {
        what: "generating the service account key".into(),
        source,
    })?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// Private keys: created 0600, so no moment exists where another user could read them.
pub fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, bytes, 0o600)
}

fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let io = |source| PkiError::Io {
        path: path.into(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn ca_is_made_once_and_keys_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let first = Authority::load_or_create(dir.path(), "test").unwrap();
        let again = Authority::load_or_create(dir.path(), "test").unwrap();
        assert_eq!(first.ca_pem(), again.ca_pem());
        let mode = fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let creds = first
            .issue_client(&Subject {
                user: "system:admin".into(),
                groups: vec!["system:masters".into()],
            })
            .unwrap();
        let (_, key) = first.save("admin", &creds).unwrap();
        assert_eq!(
            fs::metadata(key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn client_subject_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::load_or_create(dir.path(), "test").unwrap();
        let subject = Subject {
            user: "system:node:n1".into(),
            groups: vec!["system:nodes".into()],
        };
        let creds = ca.issue_client(&subject).unwrap();
        let der = pem_to_der(&creds.cert_pem);
        assert_eq!(subject_of(&der).unwrap(), subject);
        let two = Subject {
            user: "u".into(),
            groups: vec!["a".into(), "b".into()],
        };
        assert!(ca.issue_client(&two).is_err());
    }

    #[test]
    fn leaves_are_signed_by_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Authority::load_or_create(dir.path(), "test").unwrap();
        let server = ca
            .issue_server(
                "podium",
                &["localhost".into(), "kubernetes.default.svc".into()],
                &["127.0.0.1".parse().unwrap()],
            )
            .unwrap();
        let (leaf_der, root_der) = (pem_to_der(&server.cert_pem), pem_to_der(ca.ca_pem()));
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
        let (_, root) = x509_parser::parse_x509_certificate(&root_der).unwrap();
        leaf.verify_signature(Some(root.public_key())).unwrap();
        assert_eq!(leaf.issuer(), root.subject());
        assert!(
            Authority::load_or_create(dir.path(), "test")
                .unwrap()
                .issue_server("x", &["bad name!".into()], &[])
                .is_err()
        );
    }

    fn pem_to_der(pem: &str) -> Vec<u8> {
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64_decode(&body)
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let mut buf = 0u32;
        let mut bits = 0;
        for c in s.bytes().filter(|c| *c != b'=') {
            buf = (buf << 6) | A.iter().position(|a| *a == c).unwrap() as u32;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buf >> bits) as u8);
            }
        }
        out
    }
}
