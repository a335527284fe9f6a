//! The two state machines the spool persists: one for recordings, one for segments.
//!
//! Each machine is one enum plus one `transition` function; every move not listed there is
//! rejected with [`IllegalTransition`], which names the state and the event. The database layer
//! stores states as text (plus the upload URL/offset columns for segments) and parses them back
//! strictly, so a row the code does not understand is reported as corruption instead of being
//! guessed at.

use std::fmt;

use serde::Serialize;

/// Life cycle of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Capturing audio.
    Active,
    /// Stop requested; encoder threads are sealing their last segments.
    Stopping,
    /// Every track is sealed; nothing more will be written.
    Stopped,
    /// The process died while the recording was active or stopping.
    Interrupted,
    /// Every segment is on the server.
    Uploaded,
    /// The server has assembled the recording.
    Complete,
}

/// Events that move a [`RecordingState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingEvent {
    /// Active -> Stopping.
    Stop,
    /// Stopping -> Stopped.
    Finalized,
    /// Active | Stopping -> Interrupted.
    CrashDetected,
    /// Interrupted -> Active (recording continues after a crash).
    Resume,
    /// Interrupted -> Stopped (the user gives up on continuing).
    Finish,
    /// Stopped -> Uploaded.
    AllUploaded,
    /// Uploaded -> Complete.
    Completed,
}

/// Life cycle of one segment file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentState {
    /// Being written as a `.opus.part` journal.
    Open,
    /// Final `.opus` file is on disk and recorded.
    Sealed,
    /// An upload is in progress at `url`; `offset` bytes are confirmed by the server.
    Uploading { url: String, offset: u64 },
    /// Every byte is on the server.
    Uploaded,
    /// The server has stored the segment durably; the local file may be evicted.
    Acknowledged,
    /// The local file was deleted to make room; the row remains as history.
    Evicted,
}

/// Events that move a [`SegmentState`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentEvent {
    /// Open -> Sealed.
    Seal,
    /// Sealed -> Uploading { url, offset: 0 }.
    BeginUpload { url: String },
    /// Uploading -> Uploading with a new confirmed offset.
    Progress { offset: u64 },
    /// Uploading -> Sealed: the server forgot the upload (404/410), so it must be created again.
    UploadLost,
    /// Uploading -> Uploaded.
    FinishUpload,
    /// Uploaded -> Acknowledged.
    Acknowledge,
    /// Acknowledged -> Evicted.
    Evict,
}

/// A move a state machine does not allow, naming the state it was in and the event it got.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IllegalTransition {
    #[error("illegal recording transition: event {event} in state {from}")]
    Recording {
        from: RecordingState,
        event: RecordingEvent,
    },
    #[error("illegal segment transition: event {event} in state {from}")]
    Segment {
        from: SegmentState,
        event: SegmentEvent,
    },
}

/// Text in a state column that no state corresponds to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StateParseError(pub String);

impl RecordingState {
    /// Every state, for exhaustive checks.
    pub const ALL: [RecordingState; 6] = [
        RecordingState::Active,
        RecordingState::Stopping,
        RecordingState::Stopped,
        RecordingState::Interrupted,
        RecordingState::Uploaded,
        RecordingState::Complete,
    ];

    /// Applies `event`, returning the next state or the rejected move.
    pub fn transition(self, event: RecordingEvent) -> Result<RecordingState, IllegalTransition> {
        use RecordingEvent as E;
        use RecordingState as S;
        match (self, event) {
            (S::Active, E::Stop) => Ok(S::Stopping),
            (S::Stopping, E::Finalized) => Ok(S::Stopped),
            (S::Active | S::Stopping, E::CrashDetected) => Ok(S::Interrupted),
            (S::Interrupted, E::Resume) => Ok(S::Active),
            (S::Interrupted, E::Finish) => Ok(S::Stopped),
            (S::Stopped, E::AllUploaded) => Ok(S::Uploaded),
            (S::Uploaded, E::Completed) => Ok(S::Complete),
            (from, event) => Err(IllegalTransition::Recording { from, event }),
        }
    }

    /// The text stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingState::Active => "active",
            RecordingState::Stopping => "stopping",
            RecordingState::Stopped => "stopped",
            RecordingState::Interrupted => "interrupted",
            RecordingState::Uploaded => "uploaded",
            RecordingState::Complete => "complete",
        }
    }

    /// Parses the stored text; anything else is an error, never a default.
    pub fn parse(text: &str) -> Result<RecordingState, StateParseError> {
        RecordingState::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| StateParseError(format!("unknown recording state {text:?}")))
    }
}

impl RecordingEvent {
    /// Every event, for exhaustive checks.
    pub const ALL: [RecordingEvent; 7] = [
        RecordingEvent::Stop,
        RecordingEvent::Finalized,
        RecordingEvent::CrashDetected,
        RecordingEvent::Resume,
        RecordingEvent::Finish,
        RecordingEvent::AllUploaded,
        RecordingEvent::Completed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordingEvent::Stop => "stop",
            RecordingEvent::Finalized => "finalized",
            RecordingEvent::CrashDetected => "crash_detected",
            RecordingEvent::Resume => "resume",
            RecordingEvent::Finish => "finish",
            RecordingEvent::AllUploaded => "all_uploaded",
            RecordingEvent::Completed => "completed",
        }
    }
}

impl SegmentState {
    /// Applies `event`, returning the next state or the rejected move.
    pub fn transition(self, event: SegmentEvent) -> Result<SegmentState, IllegalTransition> {
        use SegmentEvent as E;
        use SegmentState as S;
        match (self, event) {
            (S::Open, E::Seal) => Ok(S::Sealed),
            (S::Sealed, E::BeginUpload { url }) => Ok(S::Uploading { url, offset: 0 }),
            (S::Uploading { url, .. }, E::Progress { offset }) => Ok(S::Uploading { url, offset }),
            (S::Uploading { .. }, E::UploadLost) => Ok(S::Sealed),
            (S::Uploading { .. }, E::FinishUpload) => Ok(S::Uploaded),
            (S::Uploaded, E::Acknowledge) => Ok(S::Acknowledged),
            (S::Acknowledged, E::Evict) => Ok(S::Evicted),
            (from, event) => Err(IllegalTransition::Segment { from, event }),
        }
    }

    /// The text stored in the `state` column (the URL and offset live in their own columns).
    pub fn as_str(&self) -> &'static str {
        match self {
            SegmentState::Open => "open",
            SegmentState::Sealed => "sealed",
            SegmentState::Uploading { .. } => "uploading",
            SegmentState::Uploaded => "uploaded",
            SegmentState::Acknowledged => "acknowledged",
            SegmentState::Evicted => "evicted",
        }
    }

    /// True once the final `.opus` file exists and its size/length/hash are recorded.
    pub fn is_sealed_or_later(&self) -> bool {
        !matches!(self, SegmentState::Open)
    }

    /// True while the spool still owns the final file on disk (not open, not evicted).
    pub fn holds_file(&self) -> bool {
        !matches!(self, SegmentState::Open | SegmentState::Evicted)
    }

    /// The (url, offset) column values for this state.
    pub fn upload_columns(&self) -> (Option<&str>, Option<u64>) {
        match self {
            SegmentState::Uploading { url, offset } => (Some(url.as_str()), Some(*offset)),
            _ => (None, None),
        }
    }

    /// Parses the stored columns. The URL/offset must be present exactly when uploading, so a
    /// half-written or hand-edited row is caught here.
    pub fn from_columns(
        text: &str,
        url: Option<String>,
        offset: Option<i64>,
    ) -> Result<SegmentState, StateParseError> {
        let state = match text {
            "open" => SegmentState::Open,
            "sealed" => SegmentState::Sealed,
            "uploading" => {
                let (Some(url), Some(offset)) = (url, offset) else {
                    return Err(StateParseError(
                        "segment state \"uploading\" without upload url/offset".to_string(),
                    ));
                };
                let offset = u64::try_from(offset)
                    .map_err(|_| StateParseError(format!("negative upload offset {offset}")))?;
                return Ok(SegmentState::Uploading { url, offset });
            }
            "uploaded" => SegmentState::Uploaded,
            "acknowledged" => SegmentState::Acknowledged,
            "evicted" => SegmentState::Evicted,
            other => return Err(StateParseError(format!("unknown segment state {other:?}"))),
        };
        if url.is_some() || offset.is_some() {
            return Err(StateParseError(format!(
                "segment state {text:?} carries upload url/offset columns"
            )));
        }
        Ok(state)
    }
}

impl SegmentEvent {
    pub fn name(&self) -> &'static str {
        match self {
            SegmentEvent::Seal => "seal",
            SegmentEvent::BeginUpload { .. } => "begin_upload",
            SegmentEvent::Progress { .. } => "progress",
            SegmentEvent::UploadLost => "upload_lost",
            SegmentEvent::FinishUpload => "finish_upload",
            SegmentEvent::Acknowledge => "acknowledge",
            SegmentEvent::Evict => "evict",
        }
    }
}

impl fmt::Display for RecordingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for RecordingEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SegmentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentState::Uploading { url, offset } => {
                write!(f, "uploading (url {url}, offset {offset})")
            }
            other => f.write_str(other.as_str()),
        }
    }
}

impl fmt::Display for SegmentEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SegmentEvent::BeginUpload { url } => write!(f, "begin_upload (url {url})"),
            SegmentEvent::Progress { offset } => write!(f, "progress (offset {offset})"),
            other => f.write_str(other.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_recording_transition() {
        use RecordingEvent as E;
        use RecordingState as S;
        let legal: &[(S, E, S)] = &[
            (S::Active, E::Stop, S::Stopping),
            (S::Stopping, E::Finalized, S::Stopped),
            (S::Active, E::CrashDetected, S::Interrupted),
            (S::Stopping, E::CrashDetected, S::Interrupted),
            (S::Interrupted, E::Resume, S::Active),
            (S::Interrupted, E::Finish, S::Stopped),
            (S::Stopped, E::AllUploaded, S::Uploaded),
            (S::Uploaded, E::Completed, S::Complete),
        ];
        let mut accepted = 0;
        for from in S::ALL {
            for event in E::ALL {
                let expected = legal
                    .iter()
                    .find(|(f, e, _)| *f == from && *e == event)
                    .map(|(_, _, to)| *to);
                match (from.transition(event), expected) {
                    (Ok(to), Some(want)) => {
                        assert_eq!(to, want, "{from} + {event}");
                        accepted += 1;
                    }
                    (Err(err), None) => {
                        assert_eq!(err, IllegalTransition::Recording { from, event });
                        assert_eq!(
                            err.to_string(),
                            format!("illegal recording transition: event {event} in state {from}")
                        );
                    }
                    (got, want) => panic!("{from} + {event}: got {got:?}, want {want:?}"),
                }
            }
        }
        assert_eq!(accepted, legal.len());
        assert_eq!(S::ALL.len() * E::ALL.len(), 42);
    }

    fn all_segment_states() -> Vec<SegmentState> {
        vec![
            SegmentState::Open,
            SegmentState::Sealed,
            SegmentState::Uploading {
                url: "https://h/u/1".into(),
                offset: 4096,
            },
            SegmentState::Uploaded,
            SegmentState::Acknowledged,
            SegmentState::Evicted,
        ]
    }

    fn all_segment_events() -> Vec<SegmentEvent> {
        vec![
            SegmentEvent::Seal,
            SegmentEvent::BeginUpload {
                url: "https://h/u/2".into(),
            },
            SegmentEvent::Progress { offset: 8192 },
            SegmentEvent::UploadLost,
            SegmentEvent::FinishUpload,
            SegmentEvent::Acknowledge,
            SegmentEvent::Evict,
        ]
    }

    #[test]
    fn every_segment_transition() {
        use SegmentState as S;
        let uploading = S::Uploading {
            url: "https://h/u/1".into(),
            offset: 4096,
        };
        // (from, event name, to)
        let legal: Vec<(S, &str, S)> = vec![
            (S::Open, "seal", S::Sealed),
            (
                S::Sealed,
                "begin_upload",
                S::Uploading {
                    url: "https://h/u/2".into(),
                    offset: 0,
                },
            ),
            (
                uploading.clone(),
                "progress",
                S::Uploading {
                    url: "https://h/u/1".into(),
                    offset: 8192,
                },
            ),
            (uploading.clone(), "upload_lost", S::Sealed),
            (uploading.clone(), "finish_upload", S::Uploaded),
            (S::Uploaded, "acknowledge", S::Acknowledged),
            (S::Acknowledged, "evict", S::Evicted),
        ];
        let states = all_segment_states();
        let events = all_segment_events();
        assert_eq!(states.len() * events.len(), 42);
        let mut accepted = 0;
        for from in &states {
            for event in &events {
                let expected = legal
                    .iter()
                    .find(|(f, e, _)| f == from && *e == event.name())
                    .map(|(_, _, to)| to.clone());
                match (from.clone().transition(event.clone()), expected) {
                    (Ok(to), Some(want)) => {
                        assert_eq!(to, want, "{from} + {event}");
                        accepted += 1;
                    }
                    (Err(err), None) => {
                        assert_eq!(
                            err,
                            IllegalTransition::Segment {
                                from: from.clone(),
                                event: event.clone()
                            }
                        );
                        assert_eq!(
                            err.to_string(),
                            format!("illegal segment transition: event {event} in state {from}")
                        );
                    }
                    (got, want) => panic!("{from} + {event}: got {got:?}, want {want:?}"),
                }
            }
        }
        assert_eq!(accepted, legal.len());
    }

    #[test]
    fn recording_state_text_round_trips_and_rejects_unknown() {
        for s in RecordingState::ALL {
            assert_eq!(RecordingState::parse(s.as_str()), Ok(s));
        }
        assert!(RecordingState::parse("Active").is_err());
        assert!(RecordingState::parse("").is_err());
        assert!(RecordingState::parse("paused").is_err());
    }

    #[test]
    fn segment_state_columns_round_trip_and_reject_inconsistent_rows() {
        for s in all_segment_states() {
            let (url, offset) = s.upload_columns();
            let back = SegmentState::from_columns(
                s.as_str(),
                url.map(str::to_string),
                offset.map(|o| o as i64),
            );
            assert_eq!(back, Ok(s.clone()));
        }
        assert!(SegmentState::from_columns("uploading", None, None).is_err());
        assert!(SegmentState::from_columns("uploading", Some("u".into()), None).is_err());
        assert!(SegmentState::from_columns("uploading", Some("u".into()), Some(-1)).is_err());
        assert!(SegmentState::from_columns("sealed", Some("u".into()), Some(0)).is_err());
        assert!(SegmentState::from_columns("Sealed", None, None).is_err());
        assert!(SegmentState::from_columns("deleted", None, None).is_err());
    }
}
