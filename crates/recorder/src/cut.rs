//! Choosing where a segment ends.
//!
//! A segment is cut at the quietest 20 ms frame inside the last stretch (2 s by default) before the
//! target length, so a word is rarely split between two segments. The frames of that stretch are
//! kept as PCM because the ones after the cut become the head of the next segment.

/// Watches the frames of one segment and decides where it ends.
#[derive(Debug)]
pub(crate) struct QuietCut {
    target_frames: u64,
    window_frames: u64,
    frame_len: usize,
    energies: Vec<f64>,
    pcm: Vec<f32>,
}

impl QuietCut {
    /// `window_frames` must be smaller than `target_frames`; the recorder's config checks this.
    pub(crate) fn new(target_frames: u64, window_frames: u64, frame_len: usize) -> Self {
        let window_frames = window_frames.min(target_frames.saturating_sub(1)).max(1);
        QuietCut {
            target_frames,
            window_frames,
            frame_len,
            energies: Vec::with_capacity(window_frames as usize),
            pcm: Vec::with_capacity(window_frames as usize * frame_len),
        }
    }

    /// Records frame number `index` (0-based within the segment). When it is the last frame before
    /// the target, returns how many frames the segment keeps: the quietest frame of the window is
    /// the segment's last one.
    pub(crate) fn observe(&mut self, index: u64, frame: &[f32]) -> Option<u64> {
        let window_start = self.target_frames - self.window_frames;
        if index < window_start {
            return None;
        }
        let energy: f64 = frame.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        self.energies.push(energy);
        self.pcm.extend_from_slice(frame);
        if index + 1 < self.target_frames {
            return None;
        }
        // On ties prefer the later frame: the segment then stays closer to its target length.
        let mut best = 0;
        for (i, &e) in self.energies.iter().enumerate() {
            if e <= self.energies[best] {
                best = i;
            }
        }
        Some(window_start + best as u64 + 1)
    }

    /// PCM of the window frames after the cut chosen by [`QuietCut::observe`], to be encoded again
    /// as the start of the next segment.
    pub(crate) fn carry(&self, keep_frames: u64) -> &[f32] {
        let window_start = self.target_frames - self.window_frames;
        let kept_in_window = keep_frames.saturating_sub(window_start) as usize;
        let from = (kept_in_window * self.frame_len).min(self.pcm.len());
        &self.pcm[from..]
    }

    pub(crate) fn reset(&mut self) {
        self.energies.clear();
        self.pcm.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(level: f32) -> Vec<f32> {
        vec![level; 4]
    }

    #[test]
    fn cuts_after_the_quietest_frame_of_the_window() {
        let mut cut = QuietCut::new(10, 4, 4);
        for i in 0..6 {
            assert_eq!(
                cut.observe(i, &frame(0.5)),
                None,
                "frame {i} is before the window"
            );
        }
        assert_eq!(cut.observe(6, &frame(0.4)), None);
        assert_eq!(cut.observe(7, &frame(0.01)), None);
        assert_eq!(cut.observe(8, &frame(0.3)), None);
        assert_eq!(cut.observe(9, &frame(0.2)), Some(8));
        assert_eq!(cut.carry(8), &[0.3, 0.3, 0.3, 0.3, 0.2, 0.2, 0.2, 0.2][..]);
    }

    #[test]
    fn quietest_last_frame_keeps_the_whole_segment() {
        let mut cut = QuietCut::new(5, 3, 2);
        for i in 0..4 {
            cut.observe(i, &[0.5, -0.5]);
        }
        assert_eq!(cut.observe(4, &[0.0, 0.0]), Some(5));
        assert!(cut.carry(5).is_empty());
    }

    #[test]
    fn ties_prefer_the_later_frame() {
        let mut cut = QuietCut::new(6, 3, 1);
        for i in 0..6 {
            let got = cut.observe(i, &[0.1]);
            if i == 5 {
                assert_eq!(got, Some(6));
            }
        }
    }

    #[test]
    fn reset_forgets_the_window() {
        let mut cut = QuietCut::new(3, 2, 1);
        cut.observe(1, &[0.0]);
        cut.reset();
        cut.observe(1, &[0.9]);
        assert_eq!(cut.observe(2, &[0.8]), Some(3));
        assert_eq!(cut.carry(2), &[0.8][..]);
    }
}
