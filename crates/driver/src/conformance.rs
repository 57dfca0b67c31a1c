//! The conformance suite every driver's tests run: the contract of the crate docs, checked the same
//! way against local processes, Slurm, Ray and the simulator.
//!
//! A driver's test builds a [`Suite`] with a closure that turns a [`Behaviour`] into a
//! [`LaunchRequest`] its engine understands (a bash `run` for real engines, a duration and exit
//! code for the simulator) and calls [`Suite::run_all`].

use std::time::{Duration, Instant};

use crate::{AttemptId, AttemptState, Driver, JobId, LaunchRequest, Observation};

/// What the job of a conformance check should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Finish quickly with exit code 0.
    Succeeds,
    /// Finish quickly with this non-zero exit code.
    Fails(i32),
    /// Keep running for minutes (until cancelled).
    RunsLong,
}

/// Builds a request for `attempt` on `nodes` nodes that behaves as asked.
pub type RequestMaker<'a> = dyn Fn(AttemptId, u32, Behaviour) -> LaunchRequest + Send + Sync + 'a;

/// One driver under test.
pub struct Suite<'a> {
    pub driver: &'a dyn Driver,
    pub request: &'a RequestMaker<'a>,
    /// Job ids the suite uses start here, so runs against a long-lived engine don't collide.
    pub first_job: u64,
    /// How long to wait for an attempt to reach a state.
    pub timeout: Duration,
    /// How often to observe while waiting.
    pub poll: Duration,
    /// Called between polls instead of sleeping when set (the simulator advances its clock).
    pub tick: Option<&'a (dyn Fn() + Send + Sync + 'a)>,
}

type Outcome = Result<(), String>;

impl Suite<'_> {
    fn attempt(&self, offset: u64) -> AttemptId {
        AttemptId { job: JobId(self.first_job + offset), attempt: 1 }
    }

    async fn observe_one(&self, attempt: AttemptId) -> Result<Observation, String> {
        let mut obs = self.driver.observe(&[attempt]).await.map_err(|e| format!("observe {attempt}: {e}"))?;
        if obs.len() != 1 || obs[0].attempt != attempt {
            return Err(format!("observe {attempt}: expected one observation for it, got {obs:?}"));
        }
        Ok(obs.remove(0))
    }

    /// Observes `attempt` until `done` holds for its state, or fails after the timeout.
    pub async fn wait_for(
        &self,
        attempt: AttemptId,
        what: &str,
        done: impl Fn(&AttemptState) -> bool,
    ) -> Result<Observation, String> {
        let start = Instant::now();
        loop {
            let obs = self.observe_one(attempt).await?;
            if done(&obs.state) {
                return Ok(obs);
            }
            if start.elapsed() > self.timeout {
                return Err(format!("attempt {attempt} not {what} after {:?}: last state {}", self.timeout, obs.state));
            }
            match self.tick {
                Some(tick) => {
                    tick();
                    tokio::task::yield_now().await;
                }
                None => tokio::time::sleep(self.poll).await,
            }
        }
    }

    /// Launching the same attempt twice starts it once and it finishes with exit code 0.
    pub async fn launch_is_idempotent(&self) -> Outcome {
        let a = self.attempt(0);
        let req = (self.request)(a, 1, Behaviour::Succeeds);
        let first = self.driver.launch(&req).await.map_err(|e| format!("first launch: {e}"))?;
        let second = self.driver.launch(&req).await.map_err(|e| format!("second launch: {e}"))?;
        if !first.newly_started || second.newly_started || first.engine_id != second.engine_id {
            return Err(format!("launching {a} twice: first {first:?}, second {second:?}"));
        }
        let obs = self.wait_for(a, "finished", AttemptState::is_terminal).await?;
        if !obs.state.is_success() {
            return Err(format!("attempt {a} should exit 0, got {}", obs.state));
        }
        let third = self.driver.launch(&req).await.map_err(|e| format!("launch after exit: {e}"))?;
        if third.newly_started {
            return Err(format!("launching finished attempt {a} again started it anew"));
        }
        Ok(())
    }

    /// A job whose run fails is reported as exited with its code, not as a driver error.
    pub async fn failing_run_reports_its_exit_code(&self) -> Outcome {
        let a = self.attempt(1);
        self.driver.launch(&(self.request)(a, 1, Behaviour::Fails(3))).await.map_err(|e| format!("launch: {e}"))?;
        let obs = self.wait_for(a, "finished", AttemptState::is_terminal).await?;
        match obs.state {
            AttemptState::Exited { code: 3, .. } => Ok(()),
            other => Err(format!("attempt {a} should exit 3, got {other}")),
        }
    }

    /// Cancel stops a running attempt; cancelling it again, or an unknown attempt, is `Ok`.
    pub async fn cancel_stops_and_is_idempotent(&self) -> Outcome {
        let a = self.attempt(2);
        self.driver.launch(&(self.request)(a, 1, Behaviour::RunsLong)).await.map_err(|e| format!("launch: {e}"))?;
        self.wait_for(a, "running", |s| matches!(s, AttemptState::Running { .. })).await?;
        self.driver.cancel(a).await.map_err(|e| format!("cancel: {e}"))?;
        self.driver.cancel(a).await.map_err(|e| format!("second cancel: {e}"))?;
        let obs = self.wait_for(a, "cancelled", AttemptState::is_terminal).await?;
        if obs.state != AttemptState::Cancelled {
            return Err(format!("attempt {a} should be cancelled, got {}", obs.state));
        }
        self.driver.cancel(self.attempt(99)).await.map_err(|e| format!("cancel of an unknown attempt: {e}"))?;
        Ok(())
    }

    /// `observe` answers one observation per id, in order, with `Unknown` for unknown ids.
    pub async fn observe_answers_in_order(&self) -> Outcome {
        let known = self.attempt(3);
        self.driver.launch(&(self.request)(known, 1, Behaviour::Succeeds)).await.map_err(|e| format!("launch: {e}"))?;
        let unknown = self.attempt(98);
        let ids = [unknown, known, unknown];
        let obs = self.driver.observe(&ids).await.map_err(|e| format!("observe: {e}"))?;
        let got: Vec<AttemptId> = obs.iter().map(|o| o.attempt).collect();
        if got != ids {
            return Err(format!("observe order: asked {ids:?}, got {got:?}"));
        }
        if obs[0].state != AttemptState::Unknown || obs[2].state != AttemptState::Unknown {
            return Err(format!("unknown attempt should be unknown, got {} and {}", obs[0].state, obs[2].state));
        }
        if obs[1].state == AttemptState::Unknown {
            return Err(format!("launched attempt {known} observed as unknown"));
        }
        self.wait_for(known, "finished", AttemptState::is_terminal).await?;
        Ok(())
    }

    /// A two-node gang runs on both nodes and reports each of them.
    pub async fn gang_reports_every_node(&self) -> Outcome {
        if !self.driver.capabilities().gangs {
            return Ok(());
        }
        let a = self.attempt(4);
        self.driver.launch(&(self.request)(a, 2, Behaviour::Succeeds)).await.map_err(|e| format!("launch: {e}"))?;
        let obs = self.wait_for(a, "finished", AttemptState::is_terminal).await?;
        if !obs.state.is_success() {
            return Err(format!("gang {a} should exit 0, got {}", obs.state));
        }
        let ranks: Vec<u32> = obs.nodes.iter().map(|n| n.rank).collect();
        if ranks != [0, 1] {
            return Err(format!("gang {a} should report ranks [0, 1], got {ranks:?}"));
        }
        Ok(())
    }

    /// Runs every check and returns all failures together.
    pub async fn run_all(&self) -> Result<(), Vec<String>> {
        let mut failures = Vec::new();
        let checks = [
            ("launch_is_idempotent", self.launch_is_idempotent().await),
            ("failing_run_reports_its_exit_code", self.failing_run_reports_its_exit_code().await),
            ("cancel_stops_and_is_idempotent", self.cancel_stops_and_is_idempotent().await),
            ("observe_answers_in_order", self.observe_answers_in_order().await),
            ("gang_reports_every_node", self.gang_reports_every_node().await),
        ];
        for (name, outcome) in checks {
            if let Err(e) = outcome {
                failures.push(format!("{name}: {e}"));
            }
        }
        if failures.is_empty() { Ok(()) } else { Err(failures) }
    }
}
