//! Restart policy and backoff: pure functions of (policy, how it ended,
//! history, now). No clock is read here; the caller passes `now`.

use std::time::{Duration, Instant};

use crate::config::{Backoff, RestartPolicy, StartLimit};

/// How a run of a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Exit status 0.
    Success,
    /// Non-zero exit status, a signal, or an OOM kill.
    Failure,
}

/// What to do after a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after this delay.
    Restart(Duration),
    /// Leave it down: the policy says so.
    Stay,
    /// Leave it down and mark it failed: it failed too often too fast.
    GiveUp(String),
}

/// The restart history of one container.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Start times within the start-limit window (oldest first).
    pub starts: Vec<Instant>,
    /// Consecutive quick failures: the exponent of the backoff.
    pub streak: u32,
}

impl History {
    pub fn started(&mut self, now: Instant, limit: Option<&StartLimit>) {
        self.starts.push(now);
        if let Some(l) = limit {
            let window = l.interval.0;
            self.starts
                .retain(|t| now.saturating_duration_since(*t) <= window);
        } else if self.starts.len() > 64 {
            self.starts.remove(0);
        }
    }
}

/// The keys of a container that decide its restarts.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub restart: RestartPolicy,
    pub backoff: &'a Backoff,
    pub limit: Option<&'a StartLimit>,
}

impl<'a> Policy<'a> {
    pub fn of(c: &'a crate::config::Container) -> Policy<'a> {
        Policy {
            restart: c.restart,
            backoff: &c.restart_backoff,
            limit: c.start_limit.as_ref(),
        }
    }
}

/// Decides what follows an exit. `ran` is how long the run lasted;
/// `stopped_by_user` is a `stop` asked for by the user.
pub fn decide(
    p: &Policy<'_>,
    ended: Ended,
    ran: Duration,
    stopped_by_user: bool,
    history: &mut History,
    now: Instant,
) -> Decision {
    let (backoff, limit) = (p.backoff, p.limit);
    let wanted = match p.restart {
        RestartPolicy::No => false,
        RestartPolicy::OnFailure => ended == Ended::Failure,
        RestartPolicy::Always => true,
        RestartPolicy::UnlessStopped => !stopped_by_user,
    };
    if !wanted || stopped_by_user {
        return Decision::Stay;
    }
    if let Some(l) = limit {
        let recent = history
            .starts
            .iter()
            .filter(|t| now.saturating_duration_since(**t) <= l.interval.0)
            .count();
        if recent >= l.burst as usize {
            return Decision::GiveUp(format!(
                "started {recent} times within {} (start_limit burst {})",
                l.interval, l.burst
            ));
        }
    }
    // A run that lasted `reset_after` counts as healthy: the backoff starts over.
    if ran >= backoff.reset_after.0 {
        history.streak = 0;
    }
    let delay = delay(backoff, history.streak);
    history.streak = history.streak.saturating_add(1);
    Decision::Restart(delay)
}

/// `initial × 2^streak`, capped at `max`.
pub fn delay(backoff: &Backoff, streak: u32) -> Duration {
    let factor = 1u32.checked_shl(streak.min(30)).unwrap_or(u32::MAX);
    backoff.initial.0.saturating_mul(factor).min(backoff.max.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Duration as D;

    fn backoff() -> Backoff {
        Backoff {
            initial: D::from_millis(100),
            max: D::from_secs(1),
            reset_after: D::from_secs(10),
        }
    }

    fn run(policy: RestartPolicy, ended: Ended, h: &mut History, now: Instant) -> Decision {
        let b = backoff();
        let p = Policy {
            restart: policy,
            backoff: &b,
            limit: None,
        };
        decide(&p, ended, Duration::from_millis(50), false, h, now)
    }

    #[test]
    fn policies() {
        let now = Instant::now();
        let mut h = History::default();
        assert_eq!(
            run(RestartPolicy::No, Ended::Failure, &mut h, now),
            Decision::Stay
        );
        assert_eq!(
            run(RestartPolicy::OnFailure, Ended::Success, &mut h, now),
            Decision::Stay
        );
        assert!(matches!(
            run(RestartPolicy::OnFailure, Ended::Failure, &mut h, now),
            Decision::Restart(_)
        ));
        assert!(matches!(
            run(RestartPolicy::Always, Ended::Success, &mut h, now),
            Decision::Restart(_)
        ));
        assert!(matches!(
            run(RestartPolicy::UnlessStopped, Ended::Success, &mut h, now),
            Decision::Restart(_)
        ));
        let d = decide(
            &Policy {
                restart: RestartPolicy::UnlessStopped,
                backoff: &backoff(),
                limit: None,
            },
            Ended::Failure,
            Duration::ZERO,
            true,
            &mut h,
            now,
        );
        assert_eq!(d, Decision::Stay);
        let d = decide(
            &Policy {
                restart: RestartPolicy::Always,
                backoff: &backoff(),
                limit: None,
            },
            Ended::Failure,
            Duration::ZERO,
            true,
            &mut h,
            now,
        );
        assert_eq!(d, Decision::Stay, "a user's stop holds for every policy");
    }

    #[test]
    fn backoff_doubles_caps_and_resets_after_a_long_run() {
        let now = Instant::now();
        let mut h = History::default();
        let delays: Vec<Duration> = (0..6)
            .map(
                |_| match run(RestartPolicy::Always, Ended::Failure, &mut h, now) {
                    Decision::Restart(d) => d,
                    other => panic!("{other:?}"),
                },
            )
            .collect();
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        let d = decide(
            &Policy {
                restart: RestartPolicy::Always,
                backoff: &backoff(),
                limit: None,
            },
            Ended::Failure,
            Duration::from_secs(10),
            false,
            &mut h,
            now,
        );
        assert_eq!(d, Decision::Restart(Duration::from_millis(100)));
    }

    #[test]
    fn start_limit_gives_up() {
        let t0 = Instant::now();
        let limit = StartLimit {
            burst: 3,
            interval: D::from_secs(60),
        };
        let mut h = History::default();
        for i in 0..3 {
            h.started(t0 + Duration::from_secs(i), Some(&limit));
        }
        let d = decide(
            &Policy {
                restart: RestartPolicy::Always,
                backoff: &backoff(),
                limit: Some(&limit),
            },
            Ended::Failure,
            Duration::ZERO,
            false,
            &mut h,
            t0 + Duration::from_secs(3),
        );
        assert_eq!(
            d,
            Decision::GiveUp("started 3 times within 1m (start_limit burst 3)".into())
        );
        // Outside the window the old starts no longer count.
        let later = t0 + Duration::from_secs(120);
        let d = decide(
            &Policy {
                restart: RestartPolicy::Always,
                backoff: &backoff(),
                limit: Some(&limit),
            },
            Ended::Failure,
            Duration::ZERO,
            false,
            &mut h,
            later,
        );
        assert!(matches!(d, Decision::Restart(_)));
    }
}
