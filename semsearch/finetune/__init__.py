"""Fine-tune a sentence-transformer on a corpus and on labelled questions.

`pairs` reads the training pairs, `sampler` keeps one answer's pairs out of each other's
batches, `model` loads the base model and mines hard negatives, `measure` scores
held-out questions before and after, and `train` runs sentence-transformers' trainer
and writes the new model folder. Nothing here is imported by a query.
"""
