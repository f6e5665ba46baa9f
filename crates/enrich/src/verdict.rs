//! One verdict per hit: who made it (`Signals.verdict`) and how sure that is
//! (`Signals.certainty`), derived from every signal by one ordered rule, so consumers filter
//! on one field instead of re-deriving it from flags. The reasons stay in `bot_reasons`.
//!
//! The rule, first match wins (docs/verdict.md has it with examples; the table test below
//! checks every row):
//!
//! | # | evidence | verdict | certainty |
//! |---|---|---|---|
//! | 1 | a honeypot link was clicked (or the hit shares a window with one) | BOT | CERTAIN |
//! | 2 | the address is in a security gateway's published network | BOT | CERTAIN |
//! | 3 | an open from Apple's proxy, by its published network | MACHINE | CERTAIN |
//! | 4 | a bot user agent (crawler, scanner, link preview, headless, HTTP library), no user agent, `HEAD`, or a burst of a message's links | BOT | PROBABLE |
//! | 5 | an open with Apple's proxy's bare `Mozilla/5.0` and no network to confirm it | MACHINE | PROBABLE |
//! | 6 | a declared prefetch | MACHINE | PROBABLE |
//! | 7 | only weak signs: sooner after sending than a person, a hosting network | BOT | POSSIBLE |
//! | 8 | an open through Gmail's, Yahoo's, Microsoft's or another image proxy | HUMAN | PROBABLE (the geo is the proxy's) |
//! | 9 | a browser or mail client it recognises, nothing else | HUMAN | PROBABLE |
//! | 10 | anything else (an agent it cannot name) | UNKNOWN | POSSIBLE |
//!
//! Behaviour seen after the hit (a click burst, a honeypot in the window) only ever moves a
//! verdict to BOT: [`add_behaviour`].

use openclick_events::v1::{BotReason, Certainty, ImageProxy, Signals, Verdict};

use crate::ua::reason_bit;
use crate::HitKind;

/// How an open was established as a proxy's machine fetch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MachineOpen {
    /// It was not.
    #[default]
    No,
    /// By the user agent alone (Apple's bare `Mozilla/5.0`), no network to confirm it.
    ByUserAgent,
    /// By the proxy's published network.
    ByNetwork,
}

/// What the rule looks at.
#[derive(Clone, Copy, Debug)]
pub struct Inputs {
    /// Open or click.
    pub kind: HitKind,
    /// Bot reasons, a bit set indexed by `BotReason as i32`.
    pub reasons: u32,
    /// The image proxy that fetched, if any.
    pub proxy: ImageProxy,
    /// Whether, and how, the open is a proxy's machine fetch.
    pub machine_open: MachineOpen,
    /// The user agent names a browser or a mail client.
    pub ua_recognised: bool,
}

fn any(reasons: u32, of: &[BotReason]) -> bool {
    of.iter().any(|&r| reasons & reason_bit(r) != 0)
}

const GATEWAYS: [BotReason; 6] = [
    BotReason::GatewayMicrosoft,
    BotReason::GatewayMimecast,
    BotReason::GatewayProofpoint,
    BotReason::GatewayBarracuda,
    BotReason::GatewayCisco,
    BotReason::GatewayOther,
];

const STRONG: [BotReason; 8] = [
    BotReason::KnownBotUa,
    BotReason::SecurityScanner,
    BotReason::LinkPreview,
    BotReason::HeadlessBrowser,
    BotReason::HttpLibrary,
    BotReason::EmptyUa,
    BotReason::HeadRequest,
    BotReason::ClickBurst,
];

const WEAK: [BotReason; 2] = [BotReason::TooFast, BotReason::HostingAsn];

/// The verdict of one hit (the rule in the module docs).
pub fn verdict(e: &Inputs) -> (Verdict, Certainty) {
    let open = e.kind == HitKind::Open;
    if any(e.reasons, &[BotReason::Honeypot]) || any(e.reasons, &GATEWAYS) {
        return (Verdict::Bot, Certainty::Certain);
    }
    if open && e.machine_open == MachineOpen::ByNetwork {
        return (Verdict::Machine, Certainty::Certain);
    }
    if any(e.reasons, &STRONG) {
        return (Verdict::Bot, Certainty::Probable);
    }
    if open && e.machine_open == MachineOpen::ByUserAgent {
        return (Verdict::Machine, Certainty::Probable);
    }
    if any(e.reasons, &[BotReason::Prefetch]) {
        return (Verdict::Machine, Certainty::Probable);
    }
    if any(e.reasons, &WEAK) {
        return (Verdict::Bot, Certainty::Possible);
    }
    if open && e.proxy != ImageProxy::None {
        return (Verdict::Human, Certainty::Probable);
    }
    if e.ua_recognised {
        return (Verdict::Human, Certainty::Probable);
    }
    (Verdict::Unknown, Certainty::Possible)
}

/// Records behaviour seen after the hit (`ClickBurst`, `Honeypot`) in `signals`: the reason is
/// added once, `suspected_bot` set, and the verdict becomes BOT with the surer of the two
/// certainties (a honeypot is CERTAIN, a burst PROBABLE).
pub fn add_behaviour(signals: &mut Signals, reason: BotReason) {
    if !signals.bot_reasons.contains(&(reason as i32)) {
        signals.bot_reasons.push(reason as i32);
        signals.bot_reasons.sort_unstable();
    }
    signals.suspected_bot = true;
    let new = if reason == BotReason::Honeypot {
        Certainty::Certain
    } else {
        Certainty::Probable
    };
    let was_bot = signals.verdict == Verdict::Bot as i32;
    let certainty = if was_bot {
        signals.certainty.max(new as i32)
    } else {
        new as i32
    };
    signals.verdict = Verdict::Bot as i32;
    signals.certainty = certainty;
}

#[cfg(test)]
mod tests {
    use super::*;
    use BotReason as R;

    fn bits(rs: &[BotReason]) -> u32 {
        rs.iter().fold(0, |b, &r| b | reason_bit(r))
    }

    /// Every row of the rule, with a case that would match a later row too (so the order is
    /// checked), and the cases the issue names: Apple MPP, a Gmail proxy open, a scanner.
    #[test]
    fn the_rule_row_by_row() {
        use Certainty::*;
        use HitKind::{Click, Open};
        use MachineOpen::{ByNetwork, ByUserAgent, No};
        use Verdict::*;
        /// name, kind, reasons, proxy, machine open, UA recognised, expected verdict.
        type Row = (
            &'static str,
            HitKind,
            &'static [BotReason],
            ImageProxy,
            MachineOpen,
            bool,
            Verdict,
            Certainty,
        );
        #[rustfmt::skip]
        let table: &[Row] = &[
            ("1 honeypot beats a human UA", Click, &[R::Honeypot], ImageProxy::None, No, true, Bot, Certain),
            ("1 honeypot with a burst", Click, &[R::Honeypot, R::ClickBurst], ImageProxy::None, No, true, Bot, Certain),
            ("2 gateway network", Click, &[R::GatewayMicrosoft], ImageProxy::None, No, true, Bot, Certain),
            ("2 gateway beats Apple", Open, &[R::GatewayOther], ImageProxy::Apple, ByNetwork, false, Bot, Certain),
            ("3 Apple MPP by network, too fast", Open, &[R::TooFast], ImageProxy::Apple, ByNetwork, false, Machine, Certain),
            ("3 is for opens only", Click, &[], ImageProxy::None, ByNetwork, true, Human, Probable),
            ("4 scanner UA", Click, &[R::SecurityScanner], ImageProxy::None, No, false, Bot, Probable),
            ("4 crawler", Open, &[R::KnownBotUa], ImageProxy::None, No, false, Bot, Probable),
            ("4 empty UA and HEAD", Click, &[R::EmptyUa, R::HeadRequest], ImageProxy::None, No, false, Bot, Probable),
            ("4 burst", Click, &[R::ClickBurst], ImageProxy::None, No, true, Bot, Probable),
            ("4 curl beats bare Mozilla", Open, &[R::HttpLibrary], ImageProxy::None, ByUserAgent, false, Bot, Probable),
            ("5 bare Mozilla.0, no network", Open, &[], ImageProxy::None, ByUserAgent, false, Machine, Probable),
            ("6 prefetch", Click, &[R::Prefetch], ImageProxy::None, No, true, Machine, Probable),
            ("6 prefetch beats too fast", Open, &[R::Prefetch, R::TooFast], ImageProxy::None, No, true, Machine, Probable),
            ("7 too fast", Click, &[R::TooFast], ImageProxy::None, No, true, Bot, Possible),
            ("7 hosting network", Click, &[R::HostingAsn], ImageProxy::None, No, true, Bot, Possible),
            ("8 Gmail proxy open", Open, &[], ImageProxy::Gmail, No, false, Human, Probable),
            ("8 Yahoo proxy open", Open, &[], ImageProxy::Yahoo, No, false, Human, Probable),
            ("9 a browser", Click, &[], ImageProxy::None, No, true, Human, Probable),
            ("9 a mail client's open", Open, &[], ImageProxy::None, No, true, Human, Probable),
            ("10 an unknown agent", Click, &[], ImageProxy::None, No, false, Unknown, Possible),
        ];
        for (name, kind, reasons, proxy, machine_open, ua_recognised, v, c) in table {
            let e = Inputs {
                kind: *kind,
                reasons: bits(reasons),
                proxy: *proxy,
                machine_open: *machine_open,
                ua_recognised: *ua_recognised,
            };
            assert_eq!(verdict(&e), (*v, *c), "{name}");
        }
    }

    #[test]
    fn behaviour_only_moves_a_verdict_to_bot() {
        let mut s = Signals {
            verdict: Verdict::Human as i32,
            certainty: Certainty::Probable as i32,
            ..Signals::default()
        };
        add_behaviour(&mut s, R::ClickBurst);
        assert_eq!(
            (s.verdict, s.certainty),
            (Verdict::Bot as i32, Certainty::Probable as i32)
        );
        add_behaviour(&mut s, R::ClickBurst);
        assert_eq!(s.bot_reasons, vec![R::ClickBurst as i32], "added once");
        add_behaviour(&mut s, R::Honeypot);
        assert_eq!(s.certainty, Certainty::Certain as i32);
        add_behaviour(&mut s, R::ClickBurst);
        assert_eq!(s.certainty, Certainty::Certain as i32, "never less sure");
        assert!(s.suspected_bot);
        // A weak BOT verdict is raised, never lowered.
        let mut s = Signals {
            verdict: Verdict::Bot as i32,
            certainty: Certainty::Possible as i32,
            bot_reasons: vec![R::TooFast as i32],
            ..Signals::default()
        };
        add_behaviour(&mut s, R::ClickBurst);
        assert_eq!(s.certainty, Certainty::Probable as i32);
        assert_eq!(s.bot_reasons, vec![R::TooFast as i32, R::ClickBurst as i32]);
    }
}
