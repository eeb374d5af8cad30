//! The automatic-restart decision after a plugin ends without a stop request.
//!
//! The rule comes from the manifest's `restart` object (`policy`, `max_restarts`,
//! `backoff_ms`). The security policy has no restart settings, so the bounds below are the
//! daemon's own:
//!
//! - the delay before the n-th restart of a crash loop (n from 0) is `backoff_ms × 2ⁿ`, at
//!   least [`MIN_BACKOFF`] (so `backoff_ms: 0` cannot spin a hot loop) and at most
//!   [`MAX_BACKOFF`] — unless the manifest's own `backoff_ms` is longer, which is honoured as
//!   is but never doubled;
//! - `max_restarts` is clamped to [`MAX_RESTARTS_CEILING`] (the schema's maximum);
//! - the cap counts the restarts of the *current crash loop*: a run that lasted at least
//!   [`STABLE_RUN`] ends the loop, so the next failure starts again at the first delay with
//!   the full `max_restarts`. (A sliding wall-clock window would not do: with long back-offs
//!   the restarts age out of the window faster than they accumulate, and the cap is never
//!   reached.)
//!
//! When the cap is reached the answer is [`NextAction::GiveUp`]: the plugin stays in the
//! state its last end put it in (`crashed`, or `exited` for a clean end under `always`) and
//! is not restarted until someone starts it again, which also forgets the loop
//! ([`RestartHistory::reset`]). Ends after a stop request never reach this module.

use std::time::Duration;

use wf_policy::manifest::{Restart, RestartPolicy};

use super::exit::Exit;

pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
pub const STABLE_RUN: Duration = Duration::from_secs(10 * 60);
pub const MAX_RESTARTS_CEILING: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartRule {
    pub policy: RestartPolicy,
    pub max_restarts: u32,
    pub base_backoff: Duration,
}

impl RestartRule {
    /// A manifest without a `restart` object never restarts.
    pub fn from_manifest(restart: Option<&Restart>) -> Self {
        match restart {
            None => Self::never(),
            Some(r) => Self {
                policy: r.policy,
                max_restarts: r.max_restarts.min(MAX_RESTARTS_CEILING),
                base_backoff: Duration::from_millis(r.backoff_ms),
            },
        }
    }

    pub fn never() -> Self {
        Self { policy: RestartPolicy::Never, max_restarts: 0, base_backoff: Duration::ZERO }
    }

    /// Whether this kind of end calls for a restart at all, before the cap is considered.
    pub fn covers(&self, exit: Exit) -> bool {
        match self.policy {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => !exit.is_clean(),
            RestartPolicy::Always => true,
        }
    }

    /// The delay before restart number `streak` (0-based) of a crash loop.
    pub fn backoff(&self, streak: u32) -> Duration {
        let base = self.base_backoff.max(MIN_BACKOFF);
        let ceiling = MAX_BACKOFF.max(base);
        let factor = 1u32.checked_shl(streak).unwrap_or(u32::MAX);
        base.saturating_mul(factor).min(ceiling)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextAction {
    /// Apply `RestartDue` once `after` has passed.
    Restart { after: Duration },
    /// The cap is reached: leave the plugin as it ended.
    GiveUp,
    /// The rule does not restart this kind of end.
    None,
}

/// What the daemon remembers about a plugin's restarts. Times are monotonic clock readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestartHistory {
    streak: u32,
    launched_at: Option<Duration>,
    since_start: u32,
}

impl RestartHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// Automatic restarts since the last explicit start, for `ps`.
    pub fn since_start(&self) -> u32 {
        self.since_start
    }

    /// Call when the launcher reports the plugin running.
    pub fn note_launched(&mut self, now: Duration) {
        self.launched_at = Some(now);
    }

    /// The restarts that count against the cap for an end observed at `exit_at`.
    pub fn streak_at(&self, exit_at: Duration) -> u32 {
        let ran_stably = self.launched_at.is_some_and(|at| exit_at.saturating_sub(at) >= STABLE_RUN);
        if ran_stably {
            0
        } else {
            self.streak
        }
    }

    /// Call when a restart is scheduled for an end observed at `exit_at`.
    pub fn note_restart(&mut self, exit_at: Duration) {
        self.streak = self.streak_at(exit_at).saturating_add(1);
        self.since_start = self.since_start.saturating_add(1);
        self.launched_at = None;
    }

    /// An explicit start: the crash loop, if any, is over and counting starts again.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Decides, and records the restart when there is one.
    pub fn on_exit(&mut self, rule: &RestartRule, exit: Exit, now: Duration) -> NextAction {
        let action = next_action(rule, self, exit, now);
        if let NextAction::Restart { .. } = action {
            self.note_restart(now);
        }
        action
    }
}

/// The pure decision for an unrequested end `exit` observed at `now`.
pub fn next_action(rule: &RestartRule, history: &RestartHistory, exit: Exit, now: Duration) -> NextAction {
    if !rule.covers(exit) {
        return NextAction::None;
    }
    let streak = history.streak_at(now);
    if streak >= rule.max_restarts {
        return NextAction::GiveUp;
    }
    NextAction::Restart { after: rule.backoff(streak) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn rule(policy: RestartPolicy, max_restarts: u32, backoff_ms: u64) -> RestartRule {
        RestartRule::from_manifest(Some(&Restart { policy, max_restarts, backoff_ms }))
    }

    fn crash() -> Exit {
        Exit::Code(1)
    }

    /// Crashes immediately after every launch, starting at `t`; returns each decision.
    fn crash_loop(
        rule: &RestartRule,
        history: &mut RestartHistory,
        crashes: usize,
        t: &mut Duration,
    ) -> Vec<NextAction> {
        let mut actions = Vec::new();
        for _ in 0..crashes {
            history.note_launched(*t);
            *t += MS;
            let action = history.on_exit(rule, crash(), *t);
            if let NextAction::Restart { after } = action {
                *t += after;
            }
            actions.push(action);
        }
        actions
    }

    #[test]
    fn a_manifest_without_restart_never_restarts() {
        let r = RestartRule::from_manifest(None);
        assert_eq!(next_action(&r, &RestartHistory::new(), crash(), Duration::ZERO), NextAction::None);
    }

    #[test]
    fn on_failure_ignores_clean_ends_and_always_does_not() {
        let history = RestartHistory::new();
        let on_failure = rule(RestartPolicy::OnFailure, 3, 100);
        assert_eq!(next_action(&on_failure, &history, Exit::Code(0), Duration::ZERO), NextAction::None);
        assert!(matches!(
            next_action(&on_failure, &history, Exit::Signal(9), Duration::ZERO),
            NextAction::Restart { .. }
        ));
        let always = rule(RestartPolicy::Always, 3, 100);
        assert!(matches!(next_action(&always, &history, Exit::Code(0), Duration::ZERO), NextAction::Restart { .. }));
        let never = rule(RestartPolicy::Never, 3, 100);
        assert_eq!(next_action(&never, &history, crash(), Duration::ZERO), NextAction::None);
    }

    #[test]
    fn a_crash_loop_backs_off_exponentially_then_gives_up_at_the_cap() {
        let r = rule(RestartPolicy::OnFailure, 3, 200);
        let mut history = RestartHistory::new();
        let mut t = Duration::ZERO;
        let actions = crash_loop(&r, &mut history, 5, &mut t);
        let restart = |ms| NextAction::Restart { after: Duration::from_millis(ms) };
        assert_eq!(actions, [restart(200), restart(400), restart(800), NextAction::GiveUp, NextAction::GiveUp]);
        assert_eq!(history.since_start(), 3);
    }

    #[test]
    fn max_restarts_zero_means_no_restart() {
        let r = rule(RestartPolicy::Always, 0, 100);
        assert_eq!(next_action(&r, &RestartHistory::new(), crash(), Duration::ZERO), NextAction::GiveUp);
    }

    #[test]
    fn the_delay_doubles_up_to_sixty_seconds_and_never_overflows() {
        let r = rule(RestartPolicy::Always, 100, 1_000);
        assert_eq!(r.backoff(0), Duration::from_secs(1));
        assert_eq!(r.backoff(5), Duration::from_secs(32));
        assert_eq!(r.backoff(6), MAX_BACKOFF);
        assert_eq!(r.backoff(40), MAX_BACKOFF);
        assert_eq!(r.backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_zero_backoff_is_raised_to_the_floor() {
        let r = rule(RestartPolicy::Always, 5, 0);
        assert_eq!(r.backoff(0), MIN_BACKOFF);
        assert_eq!(r.backoff(1), MIN_BACKOFF * 2);
    }

    #[test]
    fn a_base_backoff_beyond_the_cap_is_honoured_but_not_doubled() {
        let r = rule(RestartPolicy::Always, 5, 3_600_000);
        assert_eq!(r.backoff(0), Duration::from_secs(3_600));
        assert_eq!(r.backoff(3), Duration::from_secs(3_600));
    }

    #[test]
    fn max_restarts_is_clamped_to_the_ceiling() {
        assert_eq!(rule(RestartPolicy::Always, u32::MAX, 1).max_restarts, MAX_RESTARTS_CEILING);
    }

    #[test]
    fn long_backoffs_still_reach_the_cap() {
        // 100 restarts at up to 60 s each span far more than STABLE_RUN of wall time.
        let r = rule(RestartPolicy::OnFailure, 100, 60_000);
        let mut history = RestartHistory::new();
        let mut t = Duration::ZERO;
        let actions = crash_loop(&r, &mut history, 101, &mut t);
        assert!(t > STABLE_RUN * 9);
        assert_eq!(actions.iter().filter(|a| matches!(a, NextAction::Restart { .. })).count(), 100);
        assert_eq!(actions.last(), Some(&NextAction::GiveUp));
    }

    #[test]
    fn a_stable_run_ends_the_crash_loop() {
        let r = rule(RestartPolicy::OnFailure, 2, 100);
        let mut history = RestartHistory::new();
        let mut t = Duration::ZERO;
        crash_loop(&r, &mut history, 2, &mut t);
        assert_eq!(next_action(&r, &history, crash(), t), NextAction::GiveUp);

        history.note_launched(t);
        let just_short = t + STABLE_RUN - MS;
        assert_eq!(next_action(&r, &history, crash(), just_short), NextAction::GiveUp);
        let stable = t + STABLE_RUN;
        assert_eq!(history.on_exit(&r, crash(), stable), NextAction::Restart { after: Duration::from_millis(100) });
        assert_eq!(history.since_start(), 3);
    }

    #[test]
    fn an_explicit_start_forgets_the_loop_and_the_count() {
        let r = rule(RestartPolicy::OnFailure, 1, 100);
        let mut history = RestartHistory::new();
        let mut t = Duration::ZERO;
        assert_eq!(crash_loop(&r, &mut history, 2, &mut t).last(), Some(&NextAction::GiveUp));
        history.reset();
        assert_eq!(next_action(&r, &history, crash(), t), NextAction::Restart { after: Duration::from_millis(100) });
        assert_eq!(history.since_start(), 0);
    }

    #[test]
    fn a_failure_before_any_launch_counts_against_the_cap() {
        let r = rule(RestartPolicy::OnFailure, 1, 100);
        let mut history = RestartHistory::new();
        let late = STABLE_RUN * 2;
        assert!(matches!(history.on_exit(&r, crash(), late), NextAction::Restart { .. }));
        assert_eq!(history.on_exit(&r, crash(), late * 2), NextAction::GiveUp);
    }
}
