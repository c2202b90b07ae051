//! hyper-weather: the benchmark baseline for `config/weather.yaml`, written the way a Rust
//! developer would write that service by hand: hyper 1.x over a current-thread tokio
//! runtime (bench/run.sh pins it to one CPU), serde_json with derived types.
//! `POST /weather` with `{"location":"Berlin"}` answers
//! `{"city":"Berlin","forecast":"Clear skies with light winds","temperature_c":22}`;
//! other paths answer 404.
//!
//!     hyper-weather [ADDRESS|PORT]     (default: $PORT, else 127.0.0.1:8080)

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

#[derive(Deserialize)]
struct WeatherRequest {
    location: String,
}

#[derive(Serialize)]
struct Forecast {
    city: String,
    forecast: &'static str,
    temperature_c: i64,
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() != "/weather" {
        return Ok(status(StatusCode::NOT_FOUND));
    }
    if req.method() != Method::POST {
        return Ok(status(StatusCode::METHOD_NOT_ALLOWED));
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    let Ok(WeatherRequest { location }) = serde_json::from_slice(&body) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    let forecast = Forecast {
        city: location,
        forecast: "Clear skies with light winds",
        temperature_c: 22,
    };
    let json = serde_json::to_vec(&forecast).expect("a struct of strings and an integer");
    Ok(Response::builder()
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(json)))
        .expect("valid response"))
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    Response::builder()
        .status(code)
        .body(Full::new(Bytes::new()))
        .expect("valid response")
}

/// `ADDRESS`, a bare `PORT` (on 127.0.0.1), `$PORT`, or 127.0.0.1:8080.
fn address() -> Result<SocketAddr, String> {
    let arg = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok());
    let arg = arg.as_deref().unwrap_or("127.0.0.1:8080");
    if let Ok(port) = arg.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    arg.parse()
        .map_err(|e| format!("hyper-weather: {arg:?} is not an address or port: {e}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = address().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let listener = TcpListener::bind(addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            // A client that goes away mid-request is not this server's problem.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}
