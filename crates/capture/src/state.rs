//! The two state machines of a capture: the reader's phase (what `read()` is doing) and the
//! device supervisor's state (streaming, or reopening after a loss). Each is one enum with one
//! transition function that rejects illegal moves.

use std::fmt;

/// A move a state machine does not allow; reaching one is a bug, never user input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IllegalTransition {
    pub from: &'static str,
    pub event: &'static str,
}

impl fmt::Display for IllegalTransition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "illegal transition: {} on {}", self.event, self.from)
    }
}

/// What [`Capture::read`](crate::Capture::read) is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadPhase {
    /// Delivering the current segment.
    Live,
    /// The device segment ended (device lost); waiting for a reopened stream to deliver audio.
    AwaitingAudio,
    /// Nothing more will come (file finished or failed, or the supervisor is gone).
    Ended,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReadEvent {
    /// The current segment is closed and fully delivered. `reopenable`: a device segment, after
    /// which another stream may follow.
    Drained { reopenable: bool },
    /// A reopened stream delivered its first audio.
    AudioResumed,
    /// The device supervisor exited while the reader waited for it.
    SupervisorGone,
}

impl ReadPhase {
    fn name(self) -> &'static str {
        match self {
            ReadPhase::Live => "Live",
            ReadPhase::AwaitingAudio => "AwaitingAudio",
            ReadPhase::Ended => "Ended",
        }
    }

    pub(crate) fn on(self, event: ReadEvent) -> Result<ReadPhase, IllegalTransition> {
        use ReadEvent as E;
        use ReadPhase as P;
        match (self, event) {
            (P::Live, E::Drained { reopenable: true }) => Ok(P::AwaitingAudio),
            (P::Live, E::Drained { reopenable: false }) => Ok(P::Ended),
            (P::AwaitingAudio, E::AudioResumed) => Ok(P::Live),
            (P::AwaitingAudio, E::SupervisorGone) => Ok(P::Ended),
            (from, event) => Err(IllegalTransition {
                from: from.name(),
                event: event.name(),
            }),
        }
    }
}

impl ReadEvent {
    fn name(self) -> &'static str {
        match self {
            ReadEvent::Drained { reopenable: true } => "Drained(reopenable)",
            ReadEvent::Drained { reopenable: false } => "Drained(final)",
            ReadEvent::AudioResumed => "AudioResumed",
            ReadEvent::SupervisorGone => "SupervisorGone",
        }
    }
}

/// The device supervisor's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeviceState {
    /// A stream is open and watched for errors and stalls.
    Streaming,
    /// The stream was lost; the default input is retried every `reopen_interval`.
    Reopening,
    /// `stop()` was called; the stream is dropped.
    Stopped,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeviceEvent {
    /// Error callback said the device is gone, or no callback for `stall_timeout`.
    Lost,
    /// A reopen attempt produced a running stream.
    Reopened,
    /// A reopen attempt failed.
    ReopenFailed,
    /// The capture is being stopped.
    Stop,
}

impl DeviceState {
    fn name(self) -> &'static str {
        match self {
            DeviceState::Streaming => "Streaming",
            DeviceState::Reopening => "Reopening",
            DeviceState::Stopped => "Stopped",
        }
    }

    pub(crate) fn on(self, event: DeviceEvent) -> Result<DeviceState, IllegalTransition> {
        use DeviceEvent as E;
        use DeviceState as S;
        match (self, event) {
            (S::Streaming, E::Lost) => Ok(S::Reopening),
            (S::Reopening, E::Reopened) => Ok(S::Streaming),
            (S::Reopening, E::ReopenFailed) => Ok(S::Reopening),
            (S::Streaming | S::Reopening, E::Stop) => Ok(S::Stopped),
            (from, event) => Err(IllegalTransition {
                from: from.name(),
                event: event.name(),
            }),
        }
    }
}

impl DeviceEvent {
    fn name(self) -> &'static str {
        match self {
            DeviceEvent::Lost => "Lost",
            DeviceEvent::Reopened => "Reopened",
            DeviceEvent::ReopenFailed => "ReopenFailed",
            DeviceEvent::Stop => "Stop",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ_PHASES: [ReadPhase; 3] =
        [ReadPhase::Live, ReadPhase::AwaitingAudio, ReadPhase::Ended];
    const READ_EVENTS: [ReadEvent; 4] = [
        ReadEvent::Drained { reopenable: true },
        ReadEvent::Drained { reopenable: false },
        ReadEvent::AudioResumed,
        ReadEvent::SupervisorGone,
    ];

    #[test]
    fn read_phase_every_transition() {
        use ReadEvent as E;
        use ReadPhase as P;
        let legal = |p, e| -> Option<ReadPhase> {
            match (p, e) {
                (P::Live, E::Drained { reopenable: true }) => Some(P::AwaitingAudio),
                (P::Live, E::Drained { reopenable: false }) => Some(P::Ended),
                (P::AwaitingAudio, E::AudioResumed) => Some(P::Live),
                (P::AwaitingAudio, E::SupervisorGone) => Some(P::Ended),
                _ => None,
            }
        };
        let mut legal_count = 0;
        for p in READ_PHASES {
            for e in READ_EVENTS {
                match legal(p, e) {
                    Some(next) => {
                        legal_count += 1;
                        assert_eq!(p.on(e), Ok(next), "{p:?} on {e:?}");
                    }
                    None => assert_eq!(
                        p.on(e),
                        Err(IllegalTransition {
                            from: p.name(),
                            event: e.name()
                        }),
                        "{p:?} on {e:?}"
                    ),
                }
            }
        }
        assert_eq!(legal_count, 4);
    }

    #[test]
    fn read_phase_illegal_examples() {
        assert_eq!(
            ReadPhase::Ended
                .on(ReadEvent::AudioResumed)
                .unwrap_err()
                .to_string(),
            "illegal transition: AudioResumed on Ended"
        );
        assert!(ReadPhase::Live.on(ReadEvent::AudioResumed).is_err());
        assert!(
            ReadPhase::AwaitingAudio
                .on(ReadEvent::Drained { reopenable: true })
                .is_err()
        );
        assert!(ReadPhase::Live.on(ReadEvent::SupervisorGone).is_err());
    }

    #[test]
    fn device_state_every_transition() {
        use DeviceEvent as E;
        use DeviceState as S;
        let states = [S::Streaming, S::Reopening, S::Stopped];
        let events = [E::Lost, E::Reopened, E::ReopenFailed, E::Stop];
        let legal = |s, e| -> Option<DeviceState> {
            match (s, e) {
                (S::Streaming, E::Lost) => Some(S::Reopening),
                (S::Reopening, E::Reopened) => Some(S::Streaming),
                (S::Reopening, E::ReopenFailed) => Some(S::Reopening),
                (S::Streaming, E::Stop) => Some(S::Stopped),
                (S::Reopening, E::Stop) => Some(S::Stopped),
                _ => None,
            }
        };
        let mut legal_count = 0;
        for s in states {
            for e in events {
                match legal(s, e) {
                    Some(next) => {
                        legal_count += 1;
                        assert_eq!(s.on(e), Ok(next), "{s:?} on {e:?}");
                    }
                    None => assert_eq!(
                        s.on(e),
                        Err(IllegalTransition {
                            from: s.name(),
                            event: e.name()
                        }),
                        "{s:?} on {e:?}"
                    ),
                }
            }
        }
        assert_eq!(legal_count, 5);
    }

    #[test]
    fn device_state_illegal_examples() {
        assert_eq!(
            DeviceState::Stopped
                .on(DeviceEvent::Stop)
                .unwrap_err()
                .to_string(),
            "illegal transition: Stop on Stopped"
        );
        assert!(DeviceState::Streaming.on(DeviceEvent::Reopened).is_err());
        assert!(
            DeviceState::Streaming
                .on(DeviceEvent::ReopenFailed)
                .is_err()
        );
        assert!(DeviceState::Reopening.on(DeviceEvent::Lost).is_err());
    }
}
