//! Leases (`coordination.k8s.io/v1`): node heartbeats and leader election; upstream's
//! `printLease`.

use serde_json::{Value, json};

use crate::kinds::{Kind, typed_as};
use crate::table::{AGE, Column, Doc, NAME, col, name_and_age, s};

pub struct Lease;

impl Kind for Lease {
    typed_as!(k8s_openapi::api::coordination::v1::Lease);

    fn columns(&self) -> &[Column] {
        LEASE
    }

    fn row(&self, o: &Value, now: jiff::Timestamp) -> (Vec<Value>, Option<Value>) {
        let [name, age] = name_and_age(o, now);
        (vec![name, json!(s(o, "/spec/holderIdentity")), age], None)
    }
}

const LEASE: &[Column] = &[
    NAME,
    col(
        "Holder",
        "string",
        0,
        Doc::Field("io.k8s.api.coordination.v1.LeaseSpec", "holderIdentity"),
    ),
    AGE,
];
