"""HTTPS and authentication by default: only the CA's certificates and known tokens get
in; anonymous requests reach nothing but the public health and version paths; the CA key
and the kubeconfig are private to root."""

from __future__ import annotations

import json
import stat
import subprocess
import urllib.error
import urllib.request

from podium_cluster import Cluster, http_get, tls_opener

PUBLIC = ["/healthz", "/livez", "/readyz", "/version", "/version/"]
PRIVATE = ["/api", "/apis", "/api/v1/namespaces", "/api/v1/namespaces/default/secrets", "/openapi/v3", "/metrics"]


def request(opener, url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with opener.open(req, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def assert_unauthorized(status: int, body: str, what: str) -> None:
    assert status == 401, f"{what}: {status} {body[:200]}"
    answer = json.loads(body)
    assert (answer["kind"], answer["reason"], answer["code"]) == ("Status", "Unauthorized", 401), answer


def test_anonymous_requests_reach_only_public_paths(cluster: Cluster):
    anonymous = tls_opener(cluster.ca_file)
    for path in PUBLIC:
        status, body = request(anonymous, cluster.server + path)
        assert status == 200, f"{path}: {status} {body[:200]}"
    for path in PRIVATE:
        assert_unauthorized(*request(anonymous, cluster.server + path), f"anonymous {path}")
    # The admin's certificate opens them.
    for path in PRIVATE[:5]:
        status, body = request(cluster.opener, cluster.server + path)
        assert status == 200, f"admin {path}: {status} {body[:200]}"


def test_plain_http_is_refused_as_go_does(cluster: Cluster):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    status, body = http_get(f"http://127.0.0.1:{cluster.port}/api/v1/secrets", timeout=5, opener=opener)
    assert (status, body) == (400, "Client sent an HTTP request to an HTTPS server.\n")


def test_a_foreign_client_certificate_gets_401(cluster: Cluster):
    key, cert = cluster.work_dir / "foreign.key", cluster.work_dir / "foreign.crt"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=system:admin/O=system:masters"],
        check=True, capture_output=True, timeout=30,
    )
    foreign = tls_opener(cluster.ca_file, cert, key)
    assert_unauthorized(*request(foreign, cluster.server + "/api/v1/namespaces"), "foreign certificate")
    # kubectl with that certificate is refused too, and says so.
    done = subprocess.run(
        ["kubectl", "--server", cluster.server, "--certificate-authority", str(cluster.ca_file),
         "--client-certificate", str(cert), "--client-key", str(key), "get", "namespaces"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode != 0
    assert "Unauthorized" in done.stderr or "must be logged in" in done.stderr, done.stderr


def test_static_tokens(cluster: Cluster):
    tokens = cluster.work_dir / "tokens.csv"
    tokens.write_text('s3cr3t-token-of-alice,alice,1001,"developers"\n')
    cluster.stop()
    cluster.extra_args = ["--token-auth-file", str(tokens)]
    cluster.start()
    anonymous = tls_opener(cluster.ca_file)
    status, body = request(anonymous, cluster.server + "/api/v1/namespaces", token="s3cr3t-token-of-alice")
    assert status == 200, body[:200]
    assert "default" in body
    assert_unauthorized(*request(anonymous, cluster.server + "/api/v1/namespaces", token="wrong"), "wrong token")
    # A wrong token fails even on a public path, as upstream: the client learns it is wrong.
    assert_unauthorized(*request(anonymous, cluster.server + "/readyz", token="wrong"), "wrong token on /readyz")
    done = subprocess.run(
        ["kubectl", "--server", cluster.server, "--certificate-authority", str(cluster.ca_file),
         "--token", "s3cr3t-token-of-alice", "get", "namespaces", "-o", "name"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "namespace/default" in done.stdout


def test_private_files_are_private(cluster: Cluster):
    for path in [cluster.data_dir / "pki" / "ca.key", cluster.admin_key, cluster.kubeconfig]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == 0o600, f"{path} is mode {mode:o}"
    config = cluster.kubeconfig.read_text()
    assert "certificate-authority-data:" in config and "client-certificate-data:" in config
    assert cluster.server in config


def test_whoami(cluster: Cluster):
    """`kubectl auth whoami` (a SelfSubjectReview, protobuf from kubectl 1.32+) names the admin."""
    for minor in ["1.28", "1.33"]:
        done = cluster.kubectl("auth", "whoami", "-o", "json", kubectl=f"/usr/lib/google-cloud-sdk/bin/kubectl.{minor}")
        review = json.loads(done.stdout)
        assert review["status"]["userInfo"]["username"] == "system:admin", review
        assert "system:masters" in review["status"]["userInfo"]["groups"], review


def test_service_account_tokens(cluster: Cluster):
    """`kubectl create token` (a TokenRequest) on every minor; the token authenticates as
    the ServiceAccount; the Python client asks for one too."""
    kubectl_dir = "/usr/lib/google-cloud-sdk/bin"
    cluster.kubectl("create", "serviceaccount", "robot")

    def as_token(token: str, *args: str, minor: str = "1.33"):
        # No kubeconfig: its client certificate would authenticate first.
        return cluster.kubectl(
            "--kubeconfig", "/dev/null", "--server", cluster.server,
            "--certificate-authority", str(cluster.ca_file), "--token", token, *args,
            kubectl=f"{kubectl_dir}/kubectl.{minor}",
        )

    for minor in ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"]:
        made = cluster.kubectl("create", "token", "robot", "--duration=15m", kubectl=f"{kubectl_dir}/kubectl.{minor}")
        token = made.stdout.strip()
        assert token.count(".") == 2, (minor, made.stdout)
        listed = as_token(token, "get", "serviceaccounts", "-o", "name", minor=minor)
        assert "serviceaccount/robot" in listed.stdout, (minor, listed.stdout)
    who = json.loads(as_token(token, "auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]
    assert who["username"] == "system:serviceaccount:default:robot", who
    assert "system:serviceaccounts:default" in who["groups"], who
    too_short = cluster.kubectl("create", "token", "robot", "--duration=1m", check=False)
    assert too_short.returncode != 0 and "less than 10 minutes" in too_short.stderr, too_short.stderr

    from kubernetes import client

    core = client.CoreV1Api(cluster.api_client())
    token_request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=["https://kubernetes.default.svc.cluster.local"], expiration_seconds=600)
    )
    answer = core.create_namespaced_service_account_token("robot", "default", token_request)
    assert answer.status.token.count(".") == 2 and answer.status.expiration_timestamp is not None
    anonymous = tls_opener(cluster.ca_file)
    status, _ = request(anonymous, f"{cluster.server}/api/v1/namespaces", token=answer.status.token)
    assert status == 200
    status, _ = request(anonymous, f"{cluster.server}/api/v1/namespaces", token=answer.status.token + "x")
    assert status == 401
