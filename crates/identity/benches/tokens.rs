//! Tokens issued and verified per second, in process, on every core: RS256 signing of a full
//! access token's claims (JSON and all) and verification of such tokens.
//!
//! Run with `cargo bench -p crosspool-identity`; prints a markdown table for docs/benchmarks.md.

// Reason: a benchmark measures wall-clock time.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use identity::jwt::{SigningKey, Verifier, generate_key};
use serde_json::{Map, Value, json};
use store::Timestamp;

const DURATION: Duration = Duration::from_secs(3);

fn claims(now_seconds: i64) -> Map<String, Value> {
    let Value::Object(claims) = json!({
        "aud": "https://management.azure.com/", "iss": "https://127.0.0.1:8443/7c07f338-3cc7-40b1-9dd7-0ed742c43906/v2.0",
        "iat": now_seconds, "nbf": now_seconds, "exp": now_seconds + 3600, "tid": "7c07f338-3cc7-40b1-9dd7-0ed742c43906",
        "oid": "31c34f49-28a8-44b4-870c-f51f07d6adc1", "sub": "31c34f49-28a8-44b4-870c-f51f07d6adc1",
        "appid": "b1e3c2a4-0000-4000-8000-000000000001", "azp": "b1e3c2a4-0000-4000-8000-000000000001",
        "appidacr": "1", "idtyp": "app", "ver": "2.0",
    }) else {
        unreachable!()
    };
    claims
}

fn per_second(n_threads: usize, work: impl Fn() + Send + Sync + 'static) -> f64 {
    let work = Arc::new(work);
    let n_done = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..n_threads)
        .map(|_| {
            let (work, n_done) = (work.clone(), n_done.clone());
            std::thread::spawn(move || {
                while start.elapsed() < DURATION {
                    work();
                    n_done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    n_done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let n_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let now = Timestamp(1_800_000_000_000);
    let key = Arc::new({
        let kek = identity::kek::Kek::parse(&identity::kek::Kek::generate_text()).unwrap();
        SigningKey::from_record(&generate_key(&mut rand::rngs::OsRng, now, &kek), &kek).unwrap()
    });
    let verifier = Arc::new(Verifier::new([key.public().clone()]));
    let token = key.sign(&claims(now.0 / 1000));
    println!("| operation | threads | per second |");
    println!("|---|---:|---:|");
    for n_threads in [1, n_cores] {
        let signer = key.clone();
        let issued = per_second(n_threads, move || {
            std::hint::black_box(signer.sign(&claims(1_800_000_000)));
        });
        println!("| issue (sign an access token, RS256) | {n_threads} | {issued:.0} |");
        // A verifier of its own per token: its first sight of a token checks the signature.
        let (public, first_token) = (key.public().clone(), token.clone());
        let verified = per_second(n_threads, move || {
            let verifier = Verifier::new([public.clone()]);
            std::hint::black_box(verifier.verify(&first_token, now).unwrap());
        });
        println!(
            "| verify a token first seen (RS256, claims checked) | {n_threads} | {verified:.0} |"
        );
        let (verifier, token) = (verifier.clone(), token.clone());
        let verified = per_second(n_threads, move || {
            std::hint::black_box(verifier.verify(&token, now).unwrap());
        });
        println!("| verify a token seen before (claims checked) | {n_threads} | {verified:.0} |");
    }
}
