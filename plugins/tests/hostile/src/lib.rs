//! `hostile`: misbehaves as `input.parameters.mode` asks, so the host's sandbox can
//! be tested with a real plugin. Modes: `ok` (one set echoing the input), `loop`,
//! `grow` (allocates without end), `panic`, `big-output`, `not-json`, `wrong-shape`,
//! `http` (GET `input.parameters.url`), `read` (read-file of `repoURL`/`path`),
//! `log-flood`, `remember` (counts its calls in a static: a fresh instance says 1).

use prism_plugin_sdk::host::{self, Level};
use prism_plugin_sdk::{Error, Params, Request};
use serde_json::Value;

fn generate(req: Request) -> Result<Vec<Params>, Error> {
    let mode = req.input_str("mode")?;
    match mode {
        "ok" => {
            let mut p = req.input.parameters.clone();
            p.insert("upstream".into(), Value::Object(req.parameters.clone()));
            p.insert("now".into(), Value::String(req.now.clone()));
            Ok(vec![p])
        }
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "grow" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "remember" => {
            // A static and a heap buffer both survive only if the host reuses dirty memory.
            static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let calls = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let scratch = vec![0xa5u8; 256 << 10];
            std::hint::black_box(&scratch);
            let mut p = Params::new();
            p.insert("calls".into(), Value::String(calls.to_string()));
            Ok(vec![p])
        }
        "panic" => panic!("the hostile plugin panicked on purpose"),
        "fail" => Err(Error::new("input.parameters.mode: fail asked for")),
        "log-flood" => {
            for i in 0..10_000 {
                host::log(Level::Info, &format!("line {i} {}", "x".repeat(10_000)));
            }
            Ok(vec![])
        }
        "http" => {
            let r = host::http_get(req.input_str("url")?, &[])?;
            let mut p = Params::new();
            p.insert("status".into(), Value::String(r.status.to_string()));
            p.insert(
                "body".into(),
                Value::String(String::from_utf8_lossy(&r.body).into_owned()),
            );
            Ok(vec![p])
        }
        "read" => {
            let bytes = host::read_file(
                req.input_str("repoURL")?,
                req.input_str("revision").unwrap_or(""),
                req.input_str("path")?,
            )?;
            let mut p = Params::new();
            p.insert(
                "content".into(),
                Value::String(String::from_utf8_lossy(&bytes).into_owned()),
            );
            Ok(vec![p])
        }
        "list" => {
            let files = host::list_files(
                req.input_str("repoURL")?,
                req.input_str("revision").unwrap_or(""),
                req.input_str("glob")?,
            )?;
            Ok(files
                .into_iter()
                .map(|f| Params::from_iter([("file".to_string(), Value::String(f))]))
                .collect())
        }
        other => Err(Error::new(format!("unknown mode {other:?}"))),
    }
}

/// The raw export, bypassing the SDK, for the output-shape modes.
struct Hostile;

impl prism_plugin_sdk::bindings::Guest for Hostile {
    fn generate(request: String) -> Result<String, String> {
        let mode = serde_json::from_str::<Value>(&request)
            .ok()
            .and_then(|v| v["input"]["parameters"]["mode"].as_str().map(String::from))
            .unwrap_or_default();
        match mode.as_str() {
            "big-output" => Ok(format!(
                "{{\"output\":{{\"parameters\":[{{\"x\":\"{}\"}}]}}}}",
                "y".repeat(8 << 20)
            )),
            "not-json" => Ok("this is not json".into()),
            "wrong-shape" => Ok(r#"{"output":{"parameters":"nope"}}"#.into()),
            "many" => {
                let sets: Vec<Value> = (0..20).map(|i| serde_json::json!({"i": i})).collect();
                Ok(serde_json::json!({"output": {"parameters": sets}}).to_string())
            }
            _ => prism_plugin_sdk::handle(&request, generate),
        }
    }
}

prism_plugin_sdk::bindings::__export_generator_world!(Hostile with_types_in prism_plugin_sdk::bindings);
