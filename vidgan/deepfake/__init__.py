"""Deepfake detection trained without a fake dataset.

A CNN learns real faces vs pseudo-fakes made from them (self-blended images and blended face swaps,
`pseudofake`); `score_video` samples frames, finds faces with MTCNN, scores each crop and aggregates
per face track and per video. Training: `train.train` (`vidgan train deepfake`); the shipped model
lives in models/deepfake/.
"""

from .score import ScoreOptions, Scored, Scorer, robust_score, score_image, score_video, video_score, write_plot

__all__ = ["ScoreOptions", "Scored", "Scorer", "robust_score", "score_image", "score_video", "video_score",
           "write_plot"]
