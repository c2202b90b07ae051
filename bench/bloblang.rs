//! Criterion: the weather mapping on `{"location":"Berlin"}` (parse, evaluate,
//! serialise), next to the same transform written by hand with serde_json (parse to
//! `Value`, build the object, `to_vec`), in the same run.
//!
//!     cargo bench --bench bloblang

use bumpalo::Bump;
use criterion::{black_box, criterion_group, criterion_main, Criterion};

use sluice::bloblang::Mapping;
use sluice::message::Message;

const INPUT: &[u8] = br#"{"location":"Berlin"}"#;
const WEATHER: &str = r#"root.city = this.location
root.forecast = "Clear skies with light winds"
root.temperature_c = 22"#;
const EXPECTED: &[u8] =
    br#"{"city":"Berlin","forecast":"Clear skies with light winds","temperature_c":22}"#;

fn sluice_weather(mapping: &Mapping, arena: &mut Bump, out: &mut Vec<u8>) {
    arena.reset();
    let batch = [Message::new(arena, INPUT)];
    let result = mapping.exec(arena, &batch, 0).unwrap().unwrap();
    out.clear();
    out.extend_from_slice(result.payload);
}

fn serde_json_weather(out: &mut Vec<u8>) {
    let input: serde_json::Value = serde_json::from_slice(INPUT).unwrap();
    let doc = serde_json::json!({
        "city": input["location"],
        "forecast": "Clear skies with light winds",
        "temperature_c": 22,
    });
    *out = serde_json::to_vec(&doc).unwrap();
}

fn bench(c: &mut Criterion) {
    let mapping = Mapping::parse(WEATHER).unwrap();
    let mut arena = Bump::new();
    let mut out = Vec::new();
    // Both must produce the answer the client sees before they are timed.
    sluice_weather(&mapping, &mut arena, &mut out);
    assert_eq!(out, EXPECTED);
    serde_json_weather(&mut out);
    assert_eq!(out, EXPECTED);

    let mut g = c.benchmark_group("weather");
    g.bench_function("sluice_bloblang", |b| {
        b.iter(|| sluice_weather(black_box(&mapping), &mut arena, &mut out))
    });
    g.bench_function("serde_json_by_hand", |b| {
        b.iter(|| serde_json_weather(black_box(&mut out)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
