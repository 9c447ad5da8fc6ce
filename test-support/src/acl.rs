//! The fleet's mosquitto ACL. The file is a deployment artefact in the
//! fleet crate (`fleet/acl/mosquitto.acl`), embedded here so the brokers of
//! the tests and of fleet-bench enforce exactly what operators deploy;
//! fleet's `mtls_acl` test checks that fleet/README.md shows the same text.

/// The text of `fleet/acl/mosquitto.acl`.
pub const FLEET_ACL: &str = include_str!("../../fleet/acl/mosquitto.acl");

/// CN of the controller identity of the ACL (`user controller`).
pub const CONTROLLER: &str = "controller";
