//! Progressive syncs (`strategy.type: RollingSync`), as a pure function of the steps,
//! the Applications and the last status: Argo CD 3.x's `applicationset/progressivesync`
//! (`buildAppDependencyList`, `UpdateApplicationSetApplicationStatus`, `getAppsToSync`,
//! `UpdateApplicationSetApplicationStatusProgress`, the `RolloutProgressing` and
//! `InvalidRolloutConfig` conditions), with what Prism does differently:
//!
//! - A step is done only when each of its Applications is Healthy and Synced **at the
//!   spec Prism last wrote**: Argo CD's application controller must have compared it
//!   (`status.sync.comparedTo` equals the spec's sources and destination), and no spec
//!   change is pending. Argo trusts a Synced/Healthy status left from before the change,
//!   so a later step can start first (argo-cd issues 22558, 29410).
//! - Applications no step selects never count against step 1's `maxUpdate` (Argo counts
//!   them there through a map default).
//! - `soakSeconds` (`prism.dev` only): a step's Application counts as done only after it
//!   has stayed Healthy that long (Kargo's soak time).
//! - A sync is started once per transition to Pending, and again only while Argo CD has
//!   neither an `operation` nor a sync started since.

use crate::controller::application::Progress;
use crate::controller::crd::{ApplicationStatusEntry, Condition};
use prism_engine::model::{IntOrString, RollingSyncStep};
use std::collections::{BTreeMap, BTreeSet};

/// Argo's progressive sync statuses of an Application.
pub const WAITING: &str = "Waiting";
/// A sync is allowed and has been asked for.
pub const PENDING: &str = "Pending";
/// The sync started (or cannot: the Application has an error).
pub const PROGRESSING: &str = "Progressing";
/// Synced and Healthy at the current spec.
pub const HEALTHY: &str = "Healthy";

/// What the controller knows of one live Application owned by the set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppState {
    /// Its health, sync, revisions and last operation, from the cache.
    pub progress: Progress,
    /// Whether `operation` is set (a sync asked for and not yet taken up).
    pub has_operation: bool,
    /// Argo CD has compared the current spec (`status.sync.comparedTo` matches it).
    pub compared_current: bool,
    /// This pass writes a new spec to it.
    pub spec_changed: bool,
}

/// Everything one pass of the strategy depends on.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// `strategy.rollingSync.steps`.
    pub steps: &'a [RollingSyncStep],
    /// The desired Applications' labels (steps select over them).
    pub desired: BTreeMap<String, BTreeMap<String, String>>,
    /// The set's live Applications (not being deleted).
    pub live: BTreeMap<String, AppState>,
    /// `status.applicationStatus` of the last pass.
    pub previous: &'a [ApplicationStatusEntry],
    /// Now, RFC 3339 and Unix seconds.
    pub now: &'a str,
    /// Now in Unix seconds.
    pub now_secs: i64,
}

/// What the pass decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The new `status.applicationStatus`, by Application name.
    pub statuses: Vec<ApplicationStatusEntry>,
    /// Applications to start a sync on now (set `operation`).
    pub sync: BTreeSet<String>,
    /// `RolloutProgressing`: the step in progress (1-based), `None` when complete.
    pub progressing_step: Option<usize>,
    /// `InvalidRolloutConfig`'s message, when the configuration has issues.
    pub invalid: Option<String>,
    /// Seconds until a soaking step is done (the pass should run again then).
    pub requeue_secs: Option<i64>,
    /// How many steps the strategy has.
    pub steps: usize,
}

/// Argo's validation issues, in its order of priority for the message.
#[derive(Debug, Default)]
struct Issues {
    invalid_operators: Vec<(usize, String)>,
    duplicates: BTreeMap<String, Vec<usize>>,
    invalid_max_updates: Vec<(usize, String)>,
    empty_steps: Vec<usize>,
}

impl Issues {
    fn message(&self) -> Option<String> {
        let steps = |s: &[usize]| s.iter().map(|i| (i + 1).to_string()).collect::<Vec<_>>();
        if !self.invalid_operators.is_empty() {
            let nums = steps(
                &self
                    .invalid_operators
                    .iter()
                    .map(|(i, _)| *i)
                    .collect::<Vec<_>>(),
            );
            let ops: Vec<&str> = self
                .invalid_operators
                .iter()
                .map(|(_, o)| o.as_str())
                .collect();
            return Some(if nums.len() == 1 {
                format!(
                    "Step {} has invalid matchExpression operators: {}. Supported Operators are 'In' and 'NotIn'",
                    nums[0],
                    ops.join(", ")
                )
            } else {
                format!(
                    "Steps {} have invalid matchExpression operators: {}. Supported Operators are 'In' and 'NotIn'",
                    nums.join(", "),
                    ops.join(", ")
                )
            });
        }
        if !self.duplicates.is_empty() {
            let names: Vec<&str> = self.duplicates.keys().map(String::as_str).collect();
            let nums: Vec<String> = self
                .duplicates
                .values()
                .map(|s| steps(s).join("-"))
                .collect();
            return Some(if names.len() == 1 {
                format!(
                    "Application '{}' is selected by multiple steps: ({})",
                    names[0], nums[0]
                )
            } else {
                format!(
                    "Applications '{}' are selected by multiple steps: [({})]",
                    names.join("', '"),
                    nums.join("), (")
                )
            });
        }
        if !self.invalid_max_updates.is_empty() {
            let nums = steps(
                &self
                    .invalid_max_updates
                    .iter()
                    .map(|(i, _)| *i)
                    .collect::<Vec<_>>(),
            );
            let values: Vec<&str> = self
                .invalid_max_updates
                .iter()
                .map(|(_, v)| v.as_str())
                .collect();
            return Some(if nums.len() == 1 {
                format!(
                    "Step {} has an invalid maxUpdate value: {}",
                    nums[0], values[0]
                )
            } else {
                format!(
                    "Steps {} have invalid maxUpdate values: [{}]",
                    nums.join(", "),
                    values.join(", ")
                )
            });
        }
        if !self.empty_steps.is_empty() {
            return Some(format!(
                "Steps [{}] have no applications matching their criteria",
                steps(&self.empty_steps).join(" ")
            ));
        }
        None
    }
}

/// Argo's `labelMatchedExpression`: `In` matches a listed value, `NotIn` any other.
fn matches(value: &str, operator: &str, values: &[String]) -> Result<bool, ()> {
    match operator {
        "In" => Ok(values.iter().any(|v| v == value)),
        "NotIn" => Ok(!values.iter().any(|v| v == value)),
        _ => Err(()),
    }
}

/// Argo's `buildAppDependencyList`: each step's Applications, and each Application's
/// first step (0-based).
fn steps_of(
    steps: &[RollingSyncStep],
    desired: &BTreeMap<String, BTreeMap<String, String>>,
    issues: &mut Issues,
) -> (Vec<Vec<String>>, BTreeMap<String, usize>) {
    let mut lists = vec![Vec::new(); steps.len()];
    let mut step_of = BTreeMap::new();
    for (name, labels) in desired {
        for (i, step) in steps.iter().enumerate() {
            let mut selected = true;
            for e in &step.match_expressions {
                match labels.get(&e.key) {
                    Some(value) => match matches(value, &e.operator, &e.values) {
                        Ok(true) => {}
                        Ok(false) => {
                            selected = false;
                            break;
                        }
                        Err(()) => {
                            if !issues
                                .invalid_operators
                                .iter()
                                .any(|(s, o)| *s == i && *o == e.operator)
                            {
                                issues.invalid_operators.push((i, e.operator.clone()));
                            }
                            selected = false;
                            break;
                        }
                    },
                    // A missing label fails `In` and passes anything else.
                    None if e.operator == "In" => {
                        selected = false;
                        break;
                    }
                    None => {}
                }
            }
            if selected {
                lists[i].push(name.clone());
                match step_of.get(name) {
                    Some(first) => issues
                        .duplicates
                        .entry(name.clone())
                        .or_insert_with(|| vec![*first])
                        .push(i),
                    None => {
                        step_of.insert(name.clone(), i);
                    }
                }
            }
        }
    }
    issues.empty_steps = lists
        .iter()
        .enumerate()
        .filter(|(_, l)| l.is_empty())
        .map(|(i, _)| i)
        .collect();
    (lists, step_of)
}

/// Argo's `GetScaledValueFromIntOrPercent` (rounding down) with its floor of 1 for a
/// percentage over 0%; an invalid value is reported and counts as 1, as in Argo.
fn max_update(value: Option<&IntOrString>, total: usize) -> Result<i64, (i64, String)> {
    match value {
        None => Ok(i64::MAX),
        Some(IntOrString::Int(n)) => Ok(*n),
        Some(IntOrString::String(s)) => {
            let scaled = s
                .strip_suffix('%')
                .and_then(|p| p.parse::<i64>().ok())
                .map(|p| p.saturating_mul(total as i64) / 100);
            match scaled {
                Some(v) if v < 1 && s != "0%" => Ok(1),
                Some(v) => Ok(v),
                None => Err((1, s.clone())),
            }
        }
    }
}

/// One pass of the strategy.
pub fn run(input: &Input) -> Output {
    let mut issues = Issues::default();
    let (lists, step_of) = steps_of(input.steps, &input.desired, &mut issues);
    let step_label = |name: &str| {
        step_of
            .get(name)
            .map_or("-1".to_string(), |s| (s + 1).to_string())
    };
    let previous: BTreeMap<&str, &ApplicationStatusEntry> = input
        .previous
        .iter()
        .map(|e| (e.application.as_str(), e))
        .collect();
    let now = || Some(input.now.to_string());
    let secs = |t: &Option<String>| t.as_deref().and_then(crate::plugin::unix_of_rfc3339);

    // UpdateApplicationSetApplicationStatus: each live Application's status from its own.
    let mut statuses: Vec<ApplicationStatusEntry> = Vec::with_capacity(input.live.len());
    for (name, app) in &input.live {
        let current = match previous.get(name.as_str()) {
            Some(p) => (*p).clone(),
            None => ApplicationStatusEntry {
                application: name.clone(),
                target_revisions: app.progress.revisions.clone(),
                last_transition_time: now(),
                message: "No Application status found, defaulting status to Waiting".into(),
                status: WAITING.into(),
                step: step_label(name),
            },
        };
        let mut next = current.clone();
        next.step = step_label(name);
        let revisions_changed = current.target_revisions != app.progress.revisions;
        if revisions_changed || app.spec_changed {
            next.target_revisions = app.progress.revisions.clone();
            next.message = match (revisions_changed, app.spec_changed) {
                (true, true) => "Application has pending changes (revision and spec differ), setting status to Waiting",
                (true, false) => "Application has pending changes, setting status to Waiting",
                _ => "Application has pending changes (spec differs), setting status to Waiting",
            }
            .into();
            next.status = WAITING.into();
            next.last_transition_time = now();
        }
        let settled = app.progress.sync == "Synced" && app.compared_current && !app.spec_changed;
        if next.status == WAITING {
            if settled {
                next.last_transition_time = now();
                if app.progress.health == "Healthy" {
                    next.status = HEALTHY.into();
                    next.message =
                        "Application resource has synced, updating status to Healthy".into();
                } else {
                    next.status = PROGRESSING.into();
                    next.message =
                        "Application resource has synced, updating status to Progressing".into();
                }
            }
        } else {
            let since = secs(&current.last_transition_time).unwrap_or(0);
            if current.status == PENDING && app.progress.reconciled_at.is_none_or(|r| r >= since) {
                if app
                    .progress
                    .operation_started_at
                    .is_some_and(|s| s >= since)
                {
                    next.last_transition_time = now();
                    next.status = PROGRESSING.into();
                    next.message = match app.progress.operation_phase.as_deref() {
                        Some("Succeeded") => "Application resource completed a sync successfully, updating status from Pending to Progressing",
                        Some("Failed" | "Error") => "Application resource completed a sync, updating status from Pending to Progressing",
                        _ => "Application resource became Progressing, updating status from Pending to Progressing",
                    }
                    .into();
                } else if app.progress.error {
                    next.last_transition_time = now();
                    next.status = PROGRESSING.into();
                    next.message =
                        "Application resource has error and cannot sync, updating status to Progressing"
                            .into();
                }
            }
            if current.status == PROGRESSING && settled && app.progress.health == "Healthy" {
                next.last_transition_time = now();
                next.status = HEALTHY.into();
                next.message =
                    "Application resource became Healthy, updating status from Progressing to Healthy"
                        .into();
            }
        }
        statuses.push(next);
    }

    // getAppsToSync: a step's Applications may sync once every earlier step is done.
    let by_name: BTreeMap<String, usize> = statuses
        .iter()
        .enumerate()
        .map(|(i, s)| (s.application.clone(), i))
        .collect();
    let mut to_sync = BTreeSet::new();
    let mut requeue_secs: Option<i64> = None;
    for (i, apps) in lists.iter().enumerate() {
        to_sync.extend(apps.iter().cloned());
        let soak = input.steps[i].soak_seconds.unwrap_or(0) as i64;
        let mut done = true;
        for name in apps {
            let Some(s) = by_name.get(name).map(|&k| &statuses[k]) else {
                done = false;
                break;
            };
            if s.status != HEALTHY {
                done = false;
                break;
            }
            if soak > 0 {
                let since = secs(&s.last_transition_time).unwrap_or(input.now_secs);
                let left = since + soak - input.now_secs;
                if left > 0 {
                    requeue_secs = Some(requeue_secs.map_or(left, |r| r.min(left)));
                    done = false;
                    break;
                }
            }
        }
        if !done {
            break;
        }
    }

    // UpdateApplicationSetApplicationStatusProgress: Waiting → Pending under maxUpdate.
    let mut updating = vec![0i64; input.steps.len()];
    let mut totals = vec![0usize; input.steps.len()];
    for s in &statuses {
        if let Some(&i) = step_of.get(&s.application) {
            totals[i] += 1;
            if s.status == PENDING || s.status == PROGRESSING {
                updating[i] += 1;
            }
        }
    }
    for s in &mut statuses {
        let Some(&i) = step_of.get(&s.application) else {
            continue;
        };
        let allowed = match max_update(input.steps[i].max_update.as_ref(), totals[i]) {
            Ok(n) => updating[i] < n,
            Err((n, value)) => {
                if !issues
                    .invalid_max_updates
                    .iter()
                    .any(|(step, _)| *step == i)
                {
                    issues.invalid_max_updates.push((i, value));
                }
                updating[i] < n
            }
        };
        if s.status == WAITING && to_sync.contains(&s.application) && allowed {
            s.last_transition_time = now();
            s.status = PENDING.into();
            s.message =
                "Application moved to Pending status, watching for the Application resource to start Progressing"
                    .into();
            updating[i] += 1;
        }
    }

    // Which Pending Applications need their sync asked for (again).
    let sync = statuses
        .iter()
        .filter(|s| s.status == PENDING && to_sync.contains(&s.application))
        .filter(|s| {
            let app = &input.live[&s.application];
            let since = secs(&s.last_transition_time).unwrap_or(0);
            !app.has_operation && app.progress.operation_started_at.is_none_or(|t| t < since)
        })
        .map(|s| s.application.clone())
        .collect();

    // RolloutProgressing: the first step with an Application not Healthy (or soaking).
    let progressing_step = (0..input.steps.len())
        .find(|&i| {
            let label = (i + 1).to_string();
            let soak = input.steps[i].soak_seconds.unwrap_or(0) as i64;
            statuses.iter().filter(|s| s.step == label).any(|s| {
                s.status != HEALTHY
                    || (soak > 0
                        && secs(&s.last_transition_time).is_some_and(|t| t + soak > input.now_secs))
            })
        })
        .map(|i| i + 1);
    Output {
        statuses,
        sync,
        progressing_step,
        invalid: issues.message(),
        requeue_secs,
        steps: input.steps.len(),
    }
}

/// The two conditions of a RollingSync set, keeping `lastTransitionTime` while their
/// status stays the same.
pub fn conditions(out: &Output, previous: &[Condition], now: &str) -> Vec<Condition> {
    let cond = |type_: &str, ok: bool, reason: &str, message: String| {
        crate::controller::reconcile::condition(previous, now, type_, ok, reason, message)
    };
    vec![
        match &out.invalid {
            Some(m) => cond(
                "InvalidRolloutConfig",
                true,
                "InvalidRolloutConfig",
                m.clone(),
            ),
            None => cond(
                "InvalidRolloutConfig",
                false,
                "ValidRolloutConfig",
                "Rolling Sync Configured correctly".into(),
            ),
        },
        match out.progressing_step {
            Some(step) => cond(
                "RolloutProgressing",
                true,
                "ApplicationSetModified",
                format!("ApplicationSet is performing rollout of step {step}"),
            ),
            None => cond(
                "RolloutProgressing",
                false,
                "ApplicationSetRolloutComplete",
                "ApplicationSet Rollout has completed".into(),
            ),
        },
    ]
}

/// The order `deletionOrder: Reverse` deletes in: Applications of the last step first,
/// then each earlier step, then those no step selects (Argo puts them, as step -1, last).
pub fn reverse_deletion_order(
    steps: &[RollingSyncStep],
    apps: &BTreeMap<String, BTreeMap<String, String>>,
) -> Vec<Vec<String>> {
    let (_, step_of) = steps_of(steps, apps, &mut Issues::default());
    let mut out = vec![Vec::new(); steps.len() + 1];
    for name in apps.keys() {
        match step_of.get(name) {
            Some(&i) => out[steps.len() - 1 - i].push(name.clone()),
            None => out[steps.len()].push(name.clone()),
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Argo's `disableAutomatedSync`: a RollingSync starts the syncs itself, so an
/// automated sync policy is kept but turned off (`enabled: false`). Returns whether it
/// was on and asked to prune (the started syncs prune then, as Argo's do).
pub fn disable_automated_sync(app: &mut serde_json::Value) -> bool {
    let Some(automated) = app
        .pointer_mut("/spec/syncPolicy/automated")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return false;
    };
    let on = automated
        .get("enabled")
        .and_then(serde_json::Value::as_bool)
        != Some(false);
    let prune = on && automated.get("prune").and_then(serde_json::Value::as_bool) == Some(true);
    automated.insert("enabled".into(), false.into());
    prune
}

/// Argo's `syncApplication`: the `operation` that starts a sync, with the
/// Application's retry (default a limit of 5, as Argo's auto-sync) and sync options.
pub fn sync_operation(app: &serde_json::Value, prune: bool) -> serde_json::Value {
    let policy = &app["spec"]["syncPolicy"];
    let mut sync = serde_json::json!({});
    if policy.is_object() {
        if let Some(options) = policy.get("syncOptions").filter(|o| o.is_array()) {
            sync["syncOptions"] = options.clone();
        }
        sync["prune"] = prune.into();
    }
    serde_json::json!({
        "initiatedBy": {"username": "applicationset-controller", "automated": true},
        "info": [{"name": "Reason",
                  "value": "ApplicationSet RollingSync triggered a sync of this Application resource"}],
        "sync": sync,
        "retry": policy.get("retry").filter(|r| r.is_object()).cloned()
            .unwrap_or_else(|| serde_json::json!({"limit": 5})),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use prism_engine::model::MatchExpression;

    fn step(env: &[&str], max_update: Option<IntOrString>) -> RollingSyncStep {
        RollingSyncStep {
            match_expressions: vec![MatchExpression {
                key: "env".into(),
                operator: "In".into(),
                values: env.iter().map(|e| e.to_string()).collect(),
            }],
            max_update,
            soak_seconds: None,
        }
    }

    fn labels(env: &str) -> BTreeMap<String, String> {
        [("env".to_string(), env.to_string())].into()
    }

    /// test-1, test-2, preview-1, prod-1, prod-2, prod-3, labelled by environment.
    fn desired() -> BTreeMap<String, BTreeMap<String, String>> {
        [
            "test-1",
            "test-2",
            "preview-1",
            "prod-1",
            "prod-2",
            "prod-3",
        ]
        .iter()
        .map(|n| (n.to_string(), labels(n.split('-').next().unwrap())))
        .collect()
    }

    fn out_of_sync() -> AppState {
        AppState {
            progress: Progress {
                health: "Healthy".into(),
                sync: "OutOfSync".into(),
                revisions: vec!["r1".into()],
                ..Progress::default()
            },
            compared_current: true,
            ..AppState::default()
        }
    }

    fn healthy() -> AppState {
        let mut app = out_of_sync();
        app.progress.sync = "Synced".into();
        app
    }

    struct World {
        steps: Vec<RollingSyncStep>,
        live: BTreeMap<String, AppState>,
        status: Vec<ApplicationStatusEntry>,
        now: i64,
    }

    impl World {
        fn new(steps: Vec<RollingSyncStep>) -> World {
            World {
                steps,
                live: desired()
                    .keys()
                    .map(|n| (n.clone(), out_of_sync()))
                    .collect(),
                status: Vec::new(),
                now: 1_800_000_000,
            }
        }

        /// One pass; the statuses carry over, as the controller writes them.
        fn pass(&mut self) -> Output {
            self.now += 10;
            let now = crate::plugin::rfc3339(self.now);
            let out = run(&Input {
                steps: &self.steps,
                desired: desired(),
                live: self.live.clone(),
                previous: &self.status,
                now: &now,
                now_secs: self.now,
            });
            self.status = out.statuses.clone();
            // The controller's patch lands: Argo CD sees the operation.
            for name in &out.sync {
                self.live.get_mut(name).unwrap().has_operation = true;
            }
            out
        }

        fn status_of(&self, name: &str) -> &str {
            &self
                .status
                .iter()
                .find(|s| s.application == name)
                .unwrap()
                .status
        }

        /// Argo CD's application controller syncs `name` to Healthy (or `health`).
        fn synced(&mut self, name: &str, health: &str) {
            let app = self.live.get_mut(name).unwrap();
            app.has_operation = false;
            app.progress.operation_started_at = Some(self.now);
            app.progress.operation_phase = Some("Succeeded".into());
            app.progress.reconciled_at = Some(self.now);
            app.progress.sync = "Synced".into();
            app.progress.health = health.into();
        }
    }

    /// Steps run in order; each waits until every Application of the steps before is
    /// Healthy; `maxUpdate` bounds a step's Pending and Progressing Applications
    /// (Argo's applicationset/progressivesync/progressive_sync.go: getAppsToSync,
    /// UpdateApplicationSetApplicationStatusProgress).
    #[test]
    fn steps_run_in_order_under_max_update() {
        let mut w = World::new(vec![
            step(&["test"], None),
            step(&["preview"], None),
            step(&["prod"], Some(IntOrString::Int(2))),
        ]);
        let out = w.pass();
        assert_eq!(out.sync, ["test-1", "test-2"].map(String::from).into());
        assert_eq!(w.status_of("test-1"), PENDING);
        assert_eq!(w.status_of("preview-1"), WAITING);
        assert_eq!(out.progressing_step, Some(1));
        // Nothing new to ask while the sync is asked for and not yet started.
        assert!(w.pass().sync.is_empty());
        // An operation that vanished unstarted is asked for again.
        w.live.get_mut("test-2").unwrap().has_operation = false;
        assert_eq!(w.pass().sync, ["test-2"].map(String::from).into());
        w.synced("test-1", "Progressing");
        w.synced("test-2", "Healthy");
        w.pass();
        assert_eq!(w.status_of("test-1"), PROGRESSING);
        assert_eq!(w.status_of("test-2"), PROGRESSING);
        let out = w.pass();
        assert_eq!(w.status_of("test-2"), HEALTHY);
        assert!(
            out.sync.is_empty(),
            "step 2 starts before test-1 is Healthy"
        );
        w.live.get_mut("test-1").unwrap().progress.health = "Healthy".into();
        // The pass that sees step 1 Healthy starts step 2.
        let out = w.pass();
        assert_eq!(out.sync, ["preview-1"].map(String::from).into());
        w.synced("preview-1", "Healthy");
        assert!(w.pass().sync.is_empty());
        let out = w.pass();
        // maxUpdate 2 of 3.
        assert_eq!(out.sync, ["prod-1", "prod-2"].map(String::from).into());
        assert_eq!(w.status_of("prod-3"), WAITING);
        assert_eq!(out.progressing_step, Some(3));
        w.synced("prod-1", "Healthy");
        assert!(w.pass().sync.is_empty(), "prod-1 is still Progressing");
        let out = w.pass();
        assert_eq!(out.sync, ["prod-3"].map(String::from).into());
        for n in ["prod-2", "prod-3"] {
            w.synced(n, "Healthy");
        }
        w.pass();
        let out = w.pass();
        assert_eq!(out.progressing_step, None);
        let c = conditions(&out, &[], "now");
        assert_eq!(c[1].type_, "RolloutProgressing");
        assert_eq!(
            (c[1].status.as_str(), c[1].message.as_str()),
            ("False", "ApplicationSet Rollout has completed")
        );
    }

    /// A step that fails (Degraded after its sync) stops the rollout; `maxUpdate: 0`
    /// pauses a step; a percentage rounds down with a floor of 1 (progressive_sync.go;
    /// docs/operator-manual/applicationset/Progressive-Syncs.md).
    #[test]
    fn a_failed_step_stops_and_zero_pauses() {
        let mut w = World::new(vec![step(&["test"], None), step(&["preview"], None)]);
        w.pass();
        w.synced("test-1", "Degraded");
        w.synced("test-2", "Healthy");
        for _ in 0..4 {
            assert!(!w.pass().sync.contains("preview-1"));
        }
        assert_eq!(w.status_of("test-1"), PROGRESSING);

        let mut w = World::new(vec![step(&["test"], Some(IntOrString::Int(0)))]);
        assert!(w.pass().sync.is_empty());
        assert_eq!(w.status_of("test-1"), WAITING);

        for (pct, want) in [("50%", 1), ("10%", 1), ("100%", 3), ("0%", 0)] {
            let mut w = World::new(vec![step(&["prod"], Some(IntOrString::String(pct.into())))]);
            assert_eq!(w.pass().sync.len(), want, "{pct}");
        }
    }

    /// Argo's race (issues 22558, 29410): an Application whose spec changes this pass,
    /// or whose Synced/Healthy status Argo CD computed for an older spec, is not done;
    /// the next step waits for its sync.
    #[test]
    fn a_stale_healthy_status_does_not_finish_a_step() {
        let mut w = World::new(vec![step(&["test"], None), step(&["preview"], None)]);
        for app in w.live.values_mut() {
            *app = healthy();
        }
        w.pass();
        assert_eq!(w.status_of("test-1"), HEALTHY);
        // A new spec for every Application: Argo still says Synced and Healthy.
        for app in w.live.values_mut() {
            app.spec_changed = true;
        }
        let out = w.pass();
        assert_eq!(w.status_of("test-1"), PENDING);
        assert_eq!(w.status_of("preview-1"), WAITING);
        assert!(!out.sync.contains("preview-1"));
        // Written, but not yet compared by Argo CD.
        for app in w.live.values_mut() {
            app.spec_changed = false;
            app.compared_current = false;
        }
        assert!(!w.pass().sync.contains("preview-1"));
        assert_eq!(w.status_of("preview-1"), WAITING);
    }

    /// `soakSeconds` (Prism's own, not Argo's): a step's Healthy Applications must stay
    /// so that long; the pass asks to run again when it ends.
    #[test]
    fn soak_seconds_hold_the_next_step() {
        let mut first = step(&["test"], None);
        first.soak_seconds = Some(60);
        let mut w = World::new(vec![first, step(&["preview"], None)]);
        w.pass();
        w.synced("test-1", "Healthy");
        w.synced("test-2", "Healthy");
        w.pass();
        let out = w.pass();
        assert_eq!(w.status_of("test-1"), HEALTHY);
        assert_eq!(out.requeue_secs, Some(60));
        let out = w.pass();
        assert!(!out.sync.contains("preview-1"));
        assert_eq!(out.requeue_secs, Some(50));
        assert_eq!(out.progressing_step, Some(1));
        w.now += 50;
        let out = w.pass();
        assert!(out.sync.contains("preview-1"), "{out:?}");
    }

    /// Argo's `buildAppDependencyList` and its InvalidRolloutConfig messages: `NotIn`
    /// wins over `In`, a missing label fails `In` only, an Application in two steps
    /// keeps the first, steps without Applications and unknown operators are reported
    /// (progressive_sync.go, validation_issues.go).
    #[test]
    fn selection_and_configuration_issues_as_argo() {
        let not_in = |values: &[&str]| MatchExpression {
            key: "env".into(),
            operator: "NotIn".into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let mut both = step(&["test", "prod"], None);
        both.match_expressions.push(not_in(&["prod"]));
        let steps = vec![both, step(&["stage"], None)];
        let mut issues = Issues::default();
        let (lists, step_of) = steps_of(&steps, &desired(), &mut issues);
        assert_eq!(lists[0], ["test-1", "test-2"]);
        assert!(!step_of.contains_key("prod-1"));
        assert_eq!(
            issues.message().unwrap(),
            "Steps [2] have no applications matching their criteria"
        );

        let steps = vec![
            step(&["test"], None),
            RollingSyncStep {
                match_expressions: vec![not_in(&["prod"])],
                ..RollingSyncStep::default()
            },
        ];
        let mut issues = Issues::default();
        let (_, step_of) = steps_of(&steps, &desired(), &mut issues);
        assert_eq!(step_of["test-1"], 0);
        assert_eq!(
            issues.message().unwrap(),
            "Applications 'test-1', 'test-2' are selected by multiple steps: [(1-2), (1-2)]"
        );

        let mut odd = step(&["test"], None);
        odd.match_expressions[0].operator = "Exists".into();
        let mut issues = Issues::default();
        steps_of(&[odd], &desired(), &mut issues);
        assert_eq!(
            issues.message().unwrap(),
            "Step 1 has invalid matchExpression operators: Exists. Supported Operators are 'In' and 'NotIn'"
        );
        let out = World::new(vec![step(
            &["test", "preview", "prod"],
            Some(IntOrString::String("lots".into())),
        )])
        .pass();
        assert_eq!(
            out.invalid.as_deref(),
            Some("Step 1 has an invalid maxUpdate value: lots")
        );
    }

    /// Automated sync is turned off (and its prune carried into the started sync); the
    /// operation is Argo's, with the Application's retry and sync options
    /// (progressive_sync.go: disableAutomatedSync, syncApplication).
    #[test]
    fn automated_sync_off_and_argos_operation() {
        let mut app = serde_json::json!({"spec": {"syncPolicy": {
            "automated": {"prune": true, "selfHeal": true},
            "syncOptions": ["CreateNamespace=true"],
            "retry": {"limit": 2}}}});
        assert!(disable_automated_sync(&mut app));
        assert_eq!(app["spec"]["syncPolicy"]["automated"]["enabled"], false);
        assert!(!disable_automated_sync(&mut app), "already off: no prune");
        let op = sync_operation(&app, true);
        assert_eq!(
            op["sync"],
            serde_json::json!({"syncOptions": ["CreateNamespace=true"], "prune": true})
        );
        assert_eq!(op["retry"], serde_json::json!({"limit": 2}));
        assert_eq!(op["initiatedBy"]["username"], "applicationset-controller");
        let bare = sync_operation(&serde_json::json!({"spec": {}}), false);
        assert_eq!(bare["retry"], serde_json::json!({"limit": 5}));
        assert_eq!(bare["sync"], serde_json::json!({}));
    }

    /// `deletionOrder: Reverse`: last step first (progressive_sync.go,
    /// PerformReverseDeletion).
    #[test]
    fn reverse_deletion_goes_from_the_last_step() {
        let steps = vec![step(&["test"], None), step(&["prod"], None)];
        assert_eq!(
            reverse_deletion_order(&steps, &desired()),
            vec![
                vec!["prod-1".to_string(), "prod-2".into(), "prod-3".into()],
                vec!["test-1".into(), "test-2".into()],
                vec!["preview-1".into()],
            ]
        );
    }
}
