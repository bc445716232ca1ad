//! `hostile-command`: a WASI command module that misbehaves as `input.parameters.mode`
//! asks: `loop`, `exit` (status 3 with a message on stderr), `flood` (more stdout
//! than any cap), `env` (reports what it can see of the host: args, environment,
//! files, clock), anything else answers one empty parameter set.

use std::io::{Read, Write};

fn main() {
    let mut request = String::new();
    let _ = std::io::stdin().read_to_string(&mut request);
    let req: serde_json::Value = serde_json::from_str(&request).unwrap_or_default();
    let mode = req["input"]["parameters"]["mode"].as_str().unwrap_or("");
    let mut out = std::io::stdout();
    match mode {
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "exit" => {
            eprintln!("hostile-command: exiting with status 3 on purpose");
            std::process::exit(3);
        }
        "flood" => {
            let chunk = vec![b'x'; 1 << 16];
            for _ in 0..1024 {
                if out.write_all(&chunk).is_err() {
                    std::process::exit(1);
                }
            }
        }
        "env" => {
            let seen = serde_json::json!({
                "args": std::env::args().count().to_string(),
                "vars": std::env::vars().count().to_string(),
                "root": std::fs::read_dir("/").is_ok().to_string(),
                "etc": std::fs::read_to_string("/etc/passwd").is_ok().to_string(),
                "clock": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
                    .to_string(),
            });
            let _ = write!(out, "{}", serde_json::json!({"output": {"parameters": [seen]}}));
        }
        _ => {
            let _ = write!(out, "{}", r#"{"output":{"parameters":[{}]}}"#);
        }
    }
}
