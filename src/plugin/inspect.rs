//! `prism plugin inspect`: what a `.wasm` file is before anyone trusts it.

use super::runtime::Abi;
use serde::Serialize;
use wasmtime::{Engine, Module};

/// What `inspect` reports.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// Component or command module.
    pub abi: String,
    /// The WIT world and version a component implements, when it is Prism's.
    pub world: Option<String>,
    /// Size in bytes.
    pub size: usize,
    /// Hex SHA-256: what the plugins file pins.
    pub sha256: String,
    /// Imported interfaces (components) or functions (`module::name`).
    pub imports: Vec<String>,
    /// Exported names.
    pub exports: Vec<String>,
}

/// Inspects `bytes` (compiling them, never running them).
pub fn inspect(engine: &Engine, bytes: &[u8]) -> Result<Inspection, String> {
    let abi = Abi::detect(bytes)?;
    let (mut imports, mut exports) = match abi {
        Abi::Component => {
            let c = wasmtime::component::Component::new(engine, bytes)
                .map_err(|e| format!("not a valid component: {e:#}"))?;
            let ty = c.component_type();
            (
                ty.imports(engine)
                    .map(|(n, _)| n.to_string())
                    .collect::<Vec<_>>(),
                ty.exports(engine)
                    .map(|(n, _)| n.to_string())
                    .collect::<Vec<_>>(),
            )
        }
        Abi::Command => {
            let m = Module::new(engine, bytes).map_err(|e| format!("not a valid module: {e:#}"))?;
            (
                m.imports()
                    .map(|i| format!("{}::{}", i.module(), i.name()))
                    .collect(),
                m.exports().map(|e| e.name().to_string()).collect(),
            )
        }
    };
    imports.sort();
    exports.sort();
    let world = match abi {
        Abi::Component => {
            let version = imports
                .iter()
                .find_map(|i| i.strip_prefix("prism:generator/host@"))
                .map(str::to_string);
            match (exports.iter().any(|e| e == "generate"), version) {
                (true, Some(v)) => Some(format!("prism:generator/generator@{v}")),
                (true, None) => Some("prism:generator/generator (no host imports)".into()),
                (false, _) => None,
            }
        }
        Abi::Command => None,
    };
    Ok(Inspection {
        abi: abi.describe().to_string(),
        world,
        size: bytes.len(),
        sha256: crate::digest::sha256_hex(bytes),
        imports,
        exports,
    })
}

impl Inspection {
    /// The human-readable report.
    pub fn text(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!("abi:     {}\n", self.abi));
        out.push_str(&format!(
            "world:   {}\n",
            self.world.as_deref().unwrap_or("-")
        ));
        out.push_str(&format!("size:    {} bytes\n", self.size));
        out.push_str(&format!("sha256:  {}\n", self.sha256));
        out.push_str("imports:\n");
        for i in &self.imports {
            out.push_str(&format!("  {i}\n"));
        }
        out.push_str("exports:\n");
        for e in &self.exports {
            out.push_str(&format!("  {e}\n"));
        }
        out
    }
}
