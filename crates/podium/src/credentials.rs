//! Who is who in a cluster started by `podium up`/`podium server`: the CA in
//! `<data dir>/pki`, the API server's serving certificate, the admin kubeconfig
//! (`<data dir>/kubeconfig`, mode 0600, a client certificate in `system:masters`) and one
//! client identity per in-process component, so each talks to the API server as it
//! would from another host and is logged under its own name.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use podium_pki::{Authority, Credentials, Subject};

pub struct ClusterCredentials {
    authority: Authority,
    /// `https://host:port` as clients reach the API server.
    pub server_url: String,
}

/// kubeconfig's `*-data` fields hold base64 of the PEM.
fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

impl ClusterCredentials {
    /// Open (or on first start make) the CA of `data_dir`.
    pub fn open(data_dir: &Path, server_url: String) -> anyhow::Result<Self> {
        let authority = Authority::load_or_create(&data_dir.join("pki"), "podium")
            .context("opening the cluster CA in <data dir>/pki")?;
        Ok(ClusterCredentials {
            authority,
            server_url,
        })
    }

    pub fn ca_pem(&self) -> &str {
        self.authority.ca_pem()
    }

    /// The serving certificate: every name and address a client may use, including the
    /// in-cluster `kubernetes.default.svc` names and the first Service IP.
    pub fn serving(&self, host_name: &str, ips: &[IpAddr]) -> anyhow::Result<Credentials> {
        let mut names = vec![
            "localhost".to_string(),
            "kubernetes".into(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
            "kubernetes.default.svc.cluster.local".into(),
        ];
        if !host_name.is_empty() && !names.iter().any(|n| n == host_name) {
            names.push(host_name.to_string());
        }
        let mut addresses: Vec<IpAddr> = vec!["127.0.0.1".parse()?, "::1".parse()?];
        for ip in ips {
            if !ip.is_unspecified() && !addresses.contains(ip) {
                addresses.push(*ip);
            }
        }
        self.authority
            .issue_server("podium-apiserver", &names, &addresses)
            .context("issuing the API server's serving certificate")
    }

    /// A kubeconfig for `subject`, with the CA and a fresh client certificate inline.
    pub fn kubeconfig(&self, subject: &Subject) -> anyhow::Result<String> {
        let client = self
            .authority
            .issue_client(subject)
            .with_context(|| format!("issuing a client certificate for {}", subject.user))?;
        Ok(format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: podium\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: podium\n  context:\n    cluster: podium\n    user: {user}\n    namespace: default\ncurrent-context: podium\nusers:\n- name: {user}\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {key}\n",
            server = self.server_url,
            ca = b64(self.authority.ca_pem()),
            user = if subject.user == "system:admin" {
                "admin"
            } else {
                "component"
            },
            cert = b64(&client.cert_pem),
            key = b64(&client.key_pem),
        ))
    }

    /// Write the admin kubeconfig (mode 0600), and the admin certificate and key beside the
    /// CA for tools that take files (`curl --cert`).
    pub fn write_admin(&self, data_dir: &Path) -> anyhow::Result<PathBuf> {
        let admin = Subject {
            user: "system:admin".into(),
            groups: vec!["system:masters".into()],
        };
        let text = self.kubeconfig(&admin)?;
        let path = data_dir.join("kubeconfig");
        podium_pki::write_secret(&path, text.as_bytes()).context("writing the kubeconfig")?;
        let files = self.authority.issue_client(&admin)?;
        self.authority.save("admin", &files)?;
        Ok(path)
    }

    /// A client for an in-process component, authenticated as `subject`.
    pub async fn client(&self, subject: Subject) -> anyhow::Result<kube::Client> {
        let text = self.kubeconfig(&subject)?;
        let kubeconfig =
            kube::config::Kubeconfig::from_yaml(&text).context("reading a component kubeconfig")?;
        let config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .with_context(|| format!("configuring the API client of {}", subject.user))?;
        kube::Client::try_from(config)
            .with_context(|| format!("building the API client of {}", subject.user))
    }
}

/// The identity of a control-plane component, as upstream names them.
pub fn component(user: &str) -> Subject {
    Subject {
        user: user.into(),
        groups: Vec::new(),
    }
}

/// The identity of a node's agent (`system:node:<name>` in `system:nodes`).
pub fn node(name: &str) -> Subject {
    Subject {
        user: format!("system:node:{name}"),
        groups: vec!["system:nodes".into()],
    }
}
