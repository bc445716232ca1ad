//! `images` (Prism's own, `prism.dev` only): the newest allowed tag of container
//! images, from their registries, as parameters.
//!
//! One parameter set with `images.<alias>.name`, `.tag`, `.digest` and `.ref`
//! (`name:tag@digest`) for every image listed; nested as `images: {alias: {...}}` in
//! the Go template mode. Put it in a matrix to give every environment the same
//! chosen tags; a later child's `name` may be templated from earlier children.
//! Which tag wins is the registry edge's job (strategies as Argo CD Image Updater);
//! the engine only asks through [`Sources::image`](prism_core::sources::Sources::image).

use super::Context;
use prism_core::error::{Error, ErrorKind};
use prism_core::params::{ParamSet, ParamShape};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The `images` generator's spec.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImagesGenerator {
    /// The images to resolve.
    pub images: Vec<ImageQuery>,
    /// Registry credentials for the controller (offline: `--registries`/`--registry-auth`).
    #[serde(default)]
    #[schemars(with = "Option<std::collections::BTreeMap<String, Value>>")]
    pub credentials: Option<Value>,
}

pub use prism_core::sources::{ImageQuery, ResolvedImage, Strategy};

impl ImagesGenerator {
    pub(super) fn check_spec(&self, path: &str) -> Result<(), Error> {
        if self.images.is_empty() {
            return Err(Error::invalid(
                format!("{path}.images"),
                "list at least one image",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, img) in self.images.iter().enumerate() {
            let at = format!("{path}.images[{i}]");
            if img.alias.is_empty()
                || !img
                    .alias
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(Error::invalid(
                    format!("{at}.alias"),
                    format!(
                        "{:?} must be letters, digits, - or _ (it becomes images.<alias>.tag)",
                        img.alias
                    ),
                ));
            }
            if !seen.insert(&img.alias) {
                return Err(Error::invalid(
                    format!("{at}.alias"),
                    format!("{:?} is used twice", img.alias),
                ));
            }
            if img.name.is_empty() {
                return Err(Error::invalid(format!("{at}.name"), "must name an image"));
            }
            if img.strategy == Strategy::Digest && img.constraint.is_empty() {
                return Err(Error::invalid(
                    format!("{at}.constraint"),
                    "the digest strategy follows one tag: set constraint to that tag (e.g. latest)",
                ));
            }
            if let Some(allow) = &img.allow_tags {
                if allow != "any" && !allow.starts_with("regexp:") {
                    return Err(Error::invalid(
                        format!("{at}.allowTags"),
                        format!("{allow:?}: write `any` or `regexp:<regular expression>`"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// One parameter set with every image resolved.
    pub fn parameter_sets(&self, ctx: &Context, path: &str) -> Result<Vec<ParamSet>, Error> {
        let mut params = ParamSet::new();
        let mut nested = Map::new();
        for (i, img) in self.images.iter().enumerate() {
            let resolved = ctx.sources.image(img).map_err(|message| {
                Error::new(
                    format!("{path}.images[{i}]"),
                    ErrorKind::Image {
                        name: img.name.clone(),
                        message,
                    },
                )
            })?;
            let reference = format!("{}:{}@{}", img.name, resolved.tag, resolved.digest);
            match ctx.shape() {
                ParamShape::Flat => {
                    let key = |k: &str| format!("images.{}.{k}", img.alias);
                    params.insert(key("name"), img.name.clone().into());
                    params.insert(key("tag"), resolved.tag.clone().into());
                    params.insert(key("digest"), resolved.digest.clone().into());
                    params.insert(key("ref"), reference.into());
                }
                ParamShape::Nested => {
                    nested.insert(
                        img.alias.clone(),
                        json!({"name": img.name, "tag": resolved.tag, "digest": resolved.digest, "ref": reference}),
                    );
                }
            }
        }
        if ctx.shape() == ParamShape::Nested {
            params.insert("images".into(), Value::Object(nested));
        }
        Ok(vec![params])
    }
}

/// The `images` generator's registration.
pub struct Images;

impl super::GeneratorKind for Images {
    fn key(&self) -> &'static str {
        "images"
    }

    fn prism_only(&self) -> bool {
        true
    }

    fn requeue(&self) -> Option<std::time::Duration> {
        Some(super::GIT_REQUEUE)
    }

    fn parse(&self, body: Value, path: &str) -> Result<Box<dyn super::Generate>, Error> {
        super::parse_as::<ImagesGenerator>(body, path)
    }

    fn schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        generator.subschema_for::<ImagesGenerator>()
    }

    fn emits(&self, body: &Value, e: &mut super::Emits) {
        let _ = body;
        e.prefixes.push("images.".into());
    }
}

impl super::Generate for ImagesGenerator {
    fn check(&self, path: &str, _prism: bool) -> Result<(), Error> {
        self.check_spec(path)
    }

    fn generate(&self, ctx: &Context, path: &str) -> Result<Vec<super::Generated>, Error> {
        Ok(super::leaf(self.parameter_sets(ctx, path)?, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{expand_err, expand_with};
    use prism_core::cluster::Cluster;
    use prism_core::options::RenderOptions;
    use prism_core::sources::memory::MemorySources;
    use prism_core::sources::{Repository, SourceError, Sources};
    use prism_core::template::TemplateEngine;
    use std::sync::Arc;

    struct Registry;

    impl Sources for Registry {
        fn repository(&self, url: &str, rev: &str) -> Result<Arc<dyn Repository>, SourceError> {
            MemorySources::new().repository(url, rev)
        }
        fn clusters(&self) -> Result<Arc<[Cluster]>, SourceError> {
            Ok(Arc::from(vec![]))
        }
        fn image(&self, q: &ImageQuery) -> Result<ResolvedImage, String> {
            match q.name.as_str() {
                "r.example/team/api" => Ok(ResolvedImage {
                    tag: "1.4.2".into(),
                    digest: "sha256:aa".into(),
                }),
                other => Err(format!("no tags for {other}")),
            }
        }
    }

    fn run(raw: Value, engine: TemplateEngine) -> Result<Vec<Value>, String> {
        expand_with(raw, engine, &Registry, &RenderOptions::default())
    }

    #[test]
    fn flat_and_nested_parameters() {
        let raw = json!({"images": {"images": [{"alias": "api", "name": "r.example/team/api", "constraint": "~1.4"}]}});
        assert_eq!(
            run(raw.clone(), TemplateEngine::Fast).unwrap(),
            vec![
                json!({"images.api.name": "r.example/team/api", "images.api.tag": "1.4.2",
                        "images.api.digest": "sha256:aa", "images.api.ref": "r.example/team/api:1.4.2@sha256:aa"})
            ]
        );
        assert_eq!(
            run(raw, TemplateEngine::Handlebars).unwrap(),
            vec![
                json!({"images": {"api": {"name": "r.example/team/api", "tag": "1.4.2",
                        "digest": "sha256:aa", "ref": "r.example/team/api:1.4.2@sha256:aa"}}})
            ]
        );
    }

    #[test]
    fn errors_name_the_image_and_path() {
        let err = run(
            json!({"images": {"images": [{"alias": "w", "name": "r.example/team/web"}]}}),
            TemplateEngine::Fast,
        )
        .unwrap_err();
        assert_eq!(err, "spec.generators[0].images.images[0]: image r.example/team/web: no tags for r.example/team/web");
    }

    #[test]
    fn spec_checks() {
        let e = |img: Value| expand_err(json!({"images": {"images": [img]}}), false);
        assert!(e(json!({"alias": "a b", "name": "x"})).contains("images[0].alias"));
        assert!(e(json!({"alias": "a", "name": "x", "strategy": "digest"}))
            .contains("set constraint to that tag"));
        assert!(e(json!({"alias": "a", "name": "x", "allowTags": "^main-"}))
            .contains("regexp:<regular expression>"));
        assert!(e(json!({"alias": "a", "name": "x", "strategy": "latest"}))
            .contains("unknown variant `latest`"));
    }
}
