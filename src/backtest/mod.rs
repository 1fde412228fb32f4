//! Backtests (DESIGN §8): what a rule version's hits would have meant as alerts.
//!
//! Built on the hunt's hits, never on a pass of its own per version. [`diff`] says what each
//! version gained and lost against the one before it; [`schedule`] replays the detection
//! engine's executions over a version's hits: alerts, executions that reached `max_signals`,
//! hits lost to the cap or never searched.

pub mod diff;
pub mod schedule;
