//! Leader election on a `coordination.k8s.io` Lease, as client-go does it: the
//! leader renews the Lease every few seconds; a standby takes it over once the
//! holder's renewal is older than the lease duration. Writes carry the Lease's
//! `resourceVersion`, so two replicas racing for it cannot both win.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::Client;
use std::time::Duration;

/// What a replica should do with the Lease as it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// We hold it: renew.
    Renew,
    /// Nobody holds it, or the holder stopped renewing: take it.
    Acquire,
    /// Someone else holds it and renews it: stand by.
    Wait,
}

/// Decides from the Lease's spec (none: it does not exist), our identity and the time.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Acquire;
    };
    match spec.holder_identity.as_deref() {
        Some(h) if h == me => Decision::Renew,
        None | Some("") => Decision::Acquire,
        Some(_) => {
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
            let expired = spec
                .renew_time
                .as_ref()
                .is_none_or(|t| now.duration_since(t.0) > SignedDuration::from_secs(duration));
            if expired {
                Decision::Acquire
            } else {
                Decision::Wait
            }
        }
    }
}

/// One replica's side of the election.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl Elector {
    /// An elector for the Lease `namespace/name`, as `identity` (the pod name).
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
        }
    }

    /// How long a holder that stopped renewing keeps the Lease.
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Takes or renews the Lease; `Ok(true)` when we hold it afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await?;
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        let old = current
            .as_ref()
            .and_then(|l| l.spec.clone())
            .unwrap_or_default();
        let spec = match decision {
            Decision::Wait => return Ok(false),
            Decision::Renew => LeaseSpec {
                renew_time: Some(MicroTime(now)),
                lease_duration_seconds: Some(self.duration.as_secs() as i32),
                ..old
            },
            Decision::Acquire => LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_duration_seconds: Some(self.duration.as_secs() as i32),
                lease_transitions: Some(
                    old.lease_transitions.unwrap_or(0) + i32::from(old.holder_identity.is_some()),
                ),
                ..LeaseSpec::default()
            },
        };
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                lease.spec = Some(spec);
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            // Another replica wrote first (create or resourceVersion conflict).
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the Lease up on shutdown so a standby takes over at once.
    pub async fn release(&self) -> Result<(), kube::Error> {
        if let Some(mut lease) = self.api.get_opt(&self.name).await? {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                spec.holder_identity = None;
                spec.renew_time = None;
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Method, Request, Response};
    use kube::client::Body;
    use serde_json::{json, Value};

    fn spec(holder: Option<&str>, renewed_secs_ago: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(str::to_string),
            renew_time: Some(MicroTime(
                Timestamp::from_second(1_000_000 - renewed_secs_ago).unwrap(),
            )),
            lease_duration_seconds: Some(15),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions_follow_holder_and_renewal_age() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        assert_eq!(decide(None, "a", now), Decision::Acquire);
        assert_eq!(decide(Some(&spec(Some("a"), 5)), "a", now), Decision::Renew);
        assert_eq!(
            decide(Some(&spec(Some("a"), 500)), "a", now),
            Decision::Renew
        );
        assert_eq!(decide(Some(&spec(Some("b"), 5)), "a", now), Decision::Wait);
        assert_eq!(decide(Some(&spec(Some("b"), 15)), "a", now), Decision::Wait);
        assert_eq!(
            decide(Some(&spec(Some("b"), 16)), "a", now),
            Decision::Acquire
        );
        assert_eq!(decide(Some(&spec(None, 1)), "a", now), Decision::Acquire);
        let never_renewed = LeaseSpec {
            holder_identity: Some("b".into()),
            ..LeaseSpec::default()
        };
        assert_eq!(decide(Some(&never_renewed), "a", now), Decision::Acquire);
    }

    const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/argocd/leases/prism-controller";

    async fn answer(
        handle: &mut tower_test::mock::Handle<Request<Body>, Response<Body>>,
        method: Method,
        uri: &str,
        status: u16,
        reply: Value,
    ) -> Value {
        let (request, send) = handle.next_request().await.expect("a request");
        assert_eq!(request.method(), method);
        assert_eq!(request.uri().to_string(), uri);
        let bytes = request.into_body().collect_bytes().await.unwrap();
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                .unwrap(),
        );
        if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        }
    }

    fn not_found() -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
    }

    #[tokio::test]
    async fn a_missing_lease_is_created_held_by_us() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let elector = Elector::new(
            Client::new(service, "argocd"),
            "argocd",
            "prism-controller",
            "pod-a",
            Duration::from_secs(15),
        );
        let server = tokio::spawn(async move {
            answer(&mut handle, Method::GET, LEASE, 404, not_found()).await;
            let body = answer(
                &mut handle,
                Method::POST,
                "/apis/coordination.k8s.io/v1/namespaces/argocd/leases?",
                201,
                json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "prism-controller"}}),
            )
            .await;
            assert_eq!(body["spec"]["holderIdentity"], "pod-a");
            assert_eq!(body["spec"]["leaseDurationSeconds"], 15);
        });
        assert!(elector.try_acquire_or_renew().await.unwrap());
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_fresh_lease_of_another_replica_is_left_alone_and_a_lost_race_is_not_leadership() {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let elector = Elector::new(
            Client::new(service, "argocd"),
            "argocd",
            "prism-controller",
            "pod-a",
            Duration::from_secs(15),
        );
        let now = Timestamp::now();
        let held = |holder: &str, renewed: Timestamp| {
            json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": {"name": "prism-controller", "resourceVersion": "41"},
                   "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15,
                            "renewTime": MicroTime(renewed), "leaseTransitions": 2}})
        };
        let fresh = held("pod-b", now);
        let expired = held("pod-b", now - SignedDuration::from_secs(60));
        let server = tokio::spawn(async move {
            // Standby: one GET, no write.
            answer(&mut handle, Method::GET, LEASE, 200, fresh).await;
            // Expired: take over with the resourceVersion; the API says someone was faster.
            answer(&mut handle, Method::GET, LEASE, 200, expired).await;
            let body = answer(
                &mut handle,
                Method::PUT,
                &format!("{LEASE}?"),
                409,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "the object has been modified"}),
            )
            .await;
            assert_eq!(body["metadata"]["resourceVersion"], "41");
            assert_eq!(body["spec"]["holderIdentity"], "pod-a");
            assert_eq!(body["spec"]["leaseTransitions"], 3);
        });
        assert!(!elector.try_acquire_or_renew().await.unwrap());
        assert!(!elector.try_acquire_or_renew().await.unwrap());
        server.await.unwrap();
    }
}
