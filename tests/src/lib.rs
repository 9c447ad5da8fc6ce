//! Shared support for the integration tests: real peers as child processes.
