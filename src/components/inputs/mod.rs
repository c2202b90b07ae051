//! Inputs: where requests come from. Only `http_server` exists: requests in, responses
//! out once every output has acked.

pub mod http_server;

crate::kinds!(
    /// Every input type sluice runs, keyed by its YAML name.
    InputKind, "input", true, {
        "http_server" => HttpServer(http_server::Config),
    }
);
