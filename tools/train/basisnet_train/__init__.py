"""basisnetd's training package (docs/training.md). The commands in tools/train/ (train.py,
eval.py, export.py, from_bnm.py, paired.py, soup.py, report.py) are thin entry points into
it; every module but bnm needs torch.

  bnm         the .bnm file codec (docs/model-format.md): every reader and writer of the
              format in the repository uses it (numpy only)
  models      the networks (lightweight model, specialist with synthesized convs, baselines,
              the resnet teacher), layer-list export with BatchNorm folding, MAdds counter
  data        Fashion-MNIST idx files and labelled image folders; the train/validation split
  augment     training augmentation (Fashion-MNIST, fixed cameras), class-balanced order
  checkpoint  reading, checking and rebuilding train.py checkpoints; run lineage records
  teachers    distillation targets (cached per teacher) and loss
  metrics     accuracy and loss over a split
  averaging   weight sums and means (SWA, soup), BatchNorm re-estimation
  parallel    --procs: one run on several forked processes
  loop        the training loop of one process
  train       train.py's command line: prepares data, model and teachers, runs the loop
  evaluation  eval.py: test accuracy, early-exit sweep, threshold from validation, plots
  export      export.py: checkpoint -> .bnm + golden vectors (reference forward, self-check)
  from_bnm    from_bnm.py: .bnm -> checkpoint
  paired      paired.py: image-by-image comparison of runs
  soup        soup.py: weight average of runs
  report      report.py: the markdown results table of an eval.py JSON
"""
