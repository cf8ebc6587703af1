//! CertificateSigningRequests (`certificates.k8s.io/v1`, cluster-scoped): upstream's
//! `ValidateCertificateSigningRequestCreate` (the parts Podium checks) and
//! `printCertificateSigningRequest`. Nothing approves or signs them yet.

use serde_json::{Map, Value, json};

use crate::kinds::{Kind, typed_as};
use crate::status::{Cause, cause};
use crate::strategy::required_str;
use crate::table::{AGE, Column, Doc, NAME, arr, col, name_and_age, s};

pub struct CertificateSigningRequest;

impl Kind for CertificateSigningRequest {
    typed_as!(k8s_openapi::api::certificates::v1::CertificateSigningRequest);

    fn prepare_for_create(&self, object: &mut Map<String, Value>) {
        object.insert("status".into(), json!({}));
    }

    fn validate(&self, object: &Value, _old: Option<&Value>, causes: &mut Vec<Cause>) {
        required_str(object, "/spec/signerName", causes);
        if arr(object, "/spec/usages").is_empty() {
            causes.push(cause("FieldValueRequired", "spec.usages", "Required value"));
        }
        // `request` is a PEM CSR (base64 in JSON): it must at least say it is one.
        let pem = object
            .pointer("/spec/request")
            .and_then(Value::as_str)
            .and_then(|b64| crate::base64::decode(b64).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default();
        if !pem.contains("-----BEGIN CERTIFICATE REQUEST-----") {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.request",
                "Invalid value: []byte{...}: PEM block type must be CERTIFICATE REQUEST",
            ));
        }
        if let Some(seconds) = object
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
        {
            if seconds < 600 {
                causes.push(cause(
                    "FieldValueInvalid",
                    "spec.expirationSeconds",
                    format!("Invalid value: {seconds}: may not specify a duration less than 600 seconds (10 minutes)"),
                ));
            }
        }
    }

    fn columns(&self) -> &[Column] {
        COLUMNS
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        let signer = match s(o, "/spec/signerName") {
            "" => "<none>".to_string(),
            signer => signer.to_string(),
        };
        let duration = o
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
            .map_or("<none>".to_string(), crate::table::human_duration);
        let has = |kind: &str| {
            arr(o, "/status/conditions")
                .iter()
                .any(|c| c["type"] == kind)
        };
        let mut condition = if has("Denied") {
            "Denied".to_string()
        } else if has("Approved") {
            "Approved".to_string()
        } else {
            "Pending".to_string()
        };
        if has("Failed") {
            condition.push_str(",Failed");
        }
        if !s(o, "/status/certificate").is_empty() {
            condition.push_str(",Issued");
        }
        let cells = vec![
            name,
            age,
            json!(signer),
            json!(s(o, "/spec/username")),
            json!(duration),
            json!(condition),
        ];
        (cells, None)
    }

    fn not_acted_on(&self) -> Option<&'static str> {
        Some(
            "Podium does not approve or sign CertificateSigningRequests yet: the request is stored, but no certificate is issued",
        )
    }
}

const SPEC: &str = "io.k8s.api.certificates.v1.CertificateSigningRequestSpec";
const COLUMNS: &[Column] = &[
    NAME,
    AGE,
    col("SignerName", "string", 0, Doc::Field(SPEC, "signerName")),
    col("Requestor", "string", 0, Doc::Field(SPEC, "request")),
    col(
        "RequestedDuration",
        "string",
        0,
        Doc::Field(SPEC, "expirationSeconds"),
    ),
    col(
        "Condition",
        "string",
        0,
        Doc::Field(
            "io.k8s.api.certificates.v1.CertificateSigningRequestStatus",
            "conditions",
        ),
    ),
];

#[cfg(test)]
mod tests {
    use crate::kinds::testing::{cells, created, created_object, problems};
    use serde_json::json;

    #[test]
    fn row_and_validation() {
        let pem = crate::base64::encode(
            b"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n",
        );
        let csr = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "jane", "creationTimestamp": created()},
            "spec": {"request": pem, "signerName": "kubernetes.io/kube-apiserver-client",
                "expirationSeconds": 86400, "usages": ["client auth"]}});
        let stored = created_object(
            "certificates.k8s.io",
            "CertificateSigningRequest",
            csr.clone(),
        );
        assert_eq!(
            cells("certificates.k8s.io", "CertificateSigningRequest", stored),
            json!([
                "jane",
                "10m",
                "kubernetes.io/kube-apiserver-client",
                "",
                "24h",
                "Pending"
            ])
        );
        assert!(problems("certificates.k8s.io", "CertificateSigningRequest", csr).is_empty());
        let bad = json!({"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "b"}, "spec": {"request": "bm90IGEgY3Ny", "usages": []}});
        let fields: Vec<String> = problems("certificates.k8s.io", "CertificateSigningRequest", bad)
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        assert_eq!(fields, ["spec.signerName", "spec.usages", "spec.request"]);
    }
}
