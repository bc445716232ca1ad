//! GitHub App authentication (`appSecretName`), as Argo CD does it with ghinstallation:
//! the Secret holds `githubAppID`, `githubAppInstallationID` (optional: discovered from
//! the organization), `githubAppPrivateKey` (PEM, PKCS#1 or PKCS#8) and
//! `githubAppEnterpriseBaseUrl`. Prism signs an RS256 JWT (issued 30 s in the past,
//! valid 2 minutes), exchanges it for an installation token
//! (`POST app/installations/{id}/access_tokens`), and keeps that token until a minute
//! before it expires. Neither the key nor the tokens appear in errors or logs.

use super::{github_api_base, Auth, ScmClient, ScmTokens, Tls, GITHUB};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use prism_engine::generators::pull_request::SecretRef;
use prism_engine::sources::ScmError;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Mutex;

/// Installation tokens and discovered installation ids, per API and app.
#[derive(Default)]
pub(super) struct Installations {
    /// (API base, app id, installation id) → the installation's token.
    tokens: Mutex<HashMap<(String, i64, i64), Token>>,
    /// (API base, app id, organization in lower case) → installation id.
    ids: Mutex<HashMap<(String, i64, String), i64>>,
}

/// An installation token and the Unix second it expires.
type Token = (String, u64);

/// A GitHub App's credentials, read from its Secret.
struct App {
    id: i64,
    installation: Option<i64>,
    key: ring::signature::RsaKeyPair,
    enterprise_base_url: Option<String>,
}

impl App {
    fn read(tokens: &ScmTokens, name: &str) -> Result<App, ScmError> {
        let field = |key: &str| {
            tokens
                .secret_key(name, key)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let bad = |what: String| ScmError::Other(format!("appSecretName: Secret {name}: {what}"));
        let pem = field("githubAppPrivateKey").ok_or_else(|| {
            bad(
                "no githubAppPrivateKey (or the Secret is not given: pass it in --scm-creds)"
                    .into(),
            )
        })?;
        let number = |key: &str| -> Result<Option<i64>, ScmError> {
            field(key)
                .map(|v| {
                    v.parse::<i64>()
                        .map_err(|_| bad(format!("{key} is not a number")))
                })
                .transpose()
        };
        let id = number("githubAppID")?.ok_or_else(|| bad("no githubAppID".into()))?;
        let key = ureq::tls::parse_pem(pem.as_bytes())
            .find_map(|item| match item {
                Ok(ureq::tls::PemItem::PrivateKey(k)) => Some(k),
                _ => None,
            })
            .ok_or_else(|| bad("githubAppPrivateKey holds no PEM private key".into()))?;
        // PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub hands out) or PKCS#8.
        let key = ring::signature::RsaKeyPair::from_der(key.der())
            .or_else(|_| ring::signature::RsaKeyPair::from_pkcs8(key.der()))
            .map_err(|e| bad(format!("githubAppPrivateKey is not a usable RSA key: {e}")))?;
        Ok(App {
            id,
            installation: number("githubAppInstallationID")?.filter(|i| *i > 0),
            key,
            enterprise_base_url: field("githubAppEnterpriseBaseUrl").map(str::to_string),
        })
    }

    /// A JWT for the app: RS256, issued 30 s ago (clock skew), valid 2 minutes.
    fn jwt(&self, now: u64) -> Result<String, ScmError> {
        let iat = now.saturating_sub(30);
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD
            .encode(json!({"iat": iat, "exp": iat + 120, "iss": self.id.to_string()}).to_string());
        let input = format!("{header}.{claims}");
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| ScmError::Other("signing the GitHub App JWT failed".into()))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

impl ScmClient {
    /// The API base and the credential header of a GitHub block: a GitHub App's
    /// installation token when `app_secret_name` is given, else the `tokenRef` token
    /// (or `GITHUB_TOKEN`), else none.
    pub(super) fn github_auth(
        &self,
        api: Option<&str>,
        token_ref: Option<&SecretRef>,
        app_secret_name: Option<&str>,
        organization: &str,
        tokens: &ScmTokens,
    ) -> Result<(String, Auth), ScmError> {
        self.check_api(api)?;
        let Some(name) = app_secret_name.filter(|n| !n.is_empty()) else {
            let base = github_api_base(api);
            let token = tokens.token(token_ref, "GITHUB_TOKEN")?;
            return Ok((
                base,
                token.map(|t| ("Authorization", format!("Bearer {t}"))),
            ));
        };
        let app = App::read(tokens, name)?;
        // Argo: the spec's api, else the Secret's enterprise URL.
        let api = api
            .filter(|a| !a.is_empty())
            .or(app.enterprise_base_url.as_deref());
        let base = github_api_base(api);
        let installation = match app.installation {
            Some(id) => id,
            None => self.installation_of(&app, &base, organization)?,
        };
        let key = (base.clone(), app.id, installation);
        let now = super::unix_now();
        if let Some((token, expires)) = self
            .apps
            .tokens
            .lock()
            .ok()
            .and_then(|t| t.get(&key).cloned())
        {
            if expires > now + 60 {
                return Ok((base, Some(("Authorization", format!("token {token}")))));
            }
        }
        let url = format!("{base}app/installations/{installation}/access_tokens");
        let answer = self.github_app_call(&url, &app)?;
        let token = answer["token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ScmError::Other(format!("POST {url}: the answer has no token")))?
            .to_string();
        let expires = answer["expires_at"]
            .as_str()
            .and_then(crate::plugin::unix_of_rfc3339)
            .and_then(|t| u64::try_from(t).ok())
            .unwrap_or(now + 600);
        if let Ok(mut t) = self.apps.tokens.lock() {
            t.insert(key, (token.clone(), expires));
        }
        Ok((base, Some(("Authorization", format!("token {token}")))))
    }

    /// The app's installation on `organization` (`GET app/installations`, every page),
    /// as Argo's `DiscoverGitHubAppInstallationID`; remembered.
    fn installation_of(&self, app: &App, base: &str, organization: &str) -> Result<i64, ScmError> {
        let org = organization.to_ascii_lowercase();
        let key = (base.to_string(), app.id, org.clone());
        if let Some(id) = self.apps.ids.lock().ok().and_then(|i| i.get(&key).copied()) {
            return Ok(id);
        }
        let call = super::Call {
            auth: Some((
                "Authorization",
                format!("Bearer {}", app.jwt(super::unix_now())?),
            )),
            tls: Tls::default(),
        };
        let installations = self.list(
            &GITHUB,
            &call,
            format!("{base}app/installations?per_page=100"),
            organization,
        )?;
        let id = installations
            .iter()
            .find(|i| i["account"]["login"].as_str().map(str::to_ascii_lowercase).as_deref() == Some(org.as_str()))
            .and_then(|i| i["id"].as_i64())
            .ok_or_else(|| {
                ScmError::Other(format!(
                    "GitHub App {} has no installation on {organization}; install it or set githubAppInstallationID",
                    app.id
                ))
            })?;
        if let Ok(mut i) = self.apps.ids.lock() {
            i.insert(key, id);
        }
        Ok(id)
    }

    /// A POST signed with the app's JWT (the token exchange), never cached.
    fn github_app_call(&self, url: &str, app: &App) -> Result<Value, ScmError> {
        let jwt = app.jwt(super::unix_now())?;
        let mut response = self
            .agent(&Tls::default())?
            .post(url)
            .header("User-Agent", "prism")
            .header("Accept", "application/vnd.github+json")
            .header("Authorization", &format!("Bearer {jwt}"))
            .send_empty()
            .map_err(|e| {
                self.count("github", 0, None);
                ScmError::Other(format!("GitHub App {}: POST {url}: {e}", app.id))
            })?;
        let status = response.status().as_u16();
        self.count("github", status, None);
        if status != 201 && status != 200 {
            return Err(ScmError::Other(format!(
                "GitHub App {}: HTTP {status} from POST {url}: GitHub refused the app's JWT or installation; check the app id, installation id and private key",
                app.id
            )));
        }
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| ScmError::Other(format!("GitHub App {}: reading {url}: {e}", app.id)))?;
        serde_json::from_str(&body).map_err(|e| {
            ScmError::Other(format!(
                "GitHub App {}: {url}: the answer is not JSON: {e}",
                app.id
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn expiry_times_read_as_unix_seconds() {
        assert_eq!(
            crate::plugin::unix_of_rfc3339("1970-01-01T00:00:00Z"),
            Some(0)
        );
        assert_eq!(
            crate::plugin::unix_of_rfc3339("2016-07-11T22:14:10Z"),
            Some(1_468_275_250)
        );
        assert_eq!(
            crate::plugin::unix_of_rfc3339("2024-02-29T12:00:00Z"),
            Some(1_709_208_000)
        );
        assert_eq!(crate::plugin::unix_of_rfc3339("yesterday"), None);
    }
}
