r"""The adding problem at T = 100, 500, 1000 (Hochreiter & Schmidhuber 1997, Exp. 4): a resumable
study of LSTM (forget bias 1, chrono), GRU and SimpleRNN over seeds, with a small search for the
GRU and the SimpleRNN (see ``experiments/adding_study.py``).

Command (the whole study; run it again with the same workdir to continue where it stopped)::

    python -m experiments.main --config=experiments/configs/adding_study.py \
        --workdir=runs/adding_study

Expected (measured 2026-12-02, docs/results.md section 1; seeds 0-2 of every row): the
chrono-initialised LSTM solves T=100, 500 and 1000 (0 wrong of 2,560 at the budget, the paper's
stopping rule reached after 108,800-160,000, 179,200-192,000 and 128,000-160,000 training
sequences); the LSTM with forget bias 1, the GRU and the SimpleRNN with their default
initialisations stay at the baseline (about 15.5% solved, MSE ~ 1/24) at every T; the GRU with
chrono update-gate biases (the search's best) solves T=100, 500 and 1000; no SimpleRNN setting
of the search learns T=100. All 56 cells took 177 min of training on 2 shared cores (load 2-11).

Variants (``get_config(arg)``, comma-separated words after the colon; an unknown word raises):

- ``:tiny``: T=12 and T=16, a few dozen steps per cell, 2 seeds and a 2-setting search: the tests
  run it in seconds.
- ``:T=500``, ``:T=1000`` (or ``:T=100``): only the cells of that T (the best GRU/SimpleRNN
  settings are read from the T=100 search cells finished in the same workdir).
- ``:seeds=N``: seeds ``0 .. N-1`` (default 3).
- ``:max_minutes=M``: stop (between chunks of ``train.chunk_steps`` steps) once ``M`` minutes of
  wall time have passed; the next run resumes. 0: no limit.

Overrides as for every experiment, e.g. ``--config.models=lstm_chrono,gru``.
"""

import ml_collections

from experiments.configs import parse_arg

# The fixed step budget per T (batch 64): 192,000 / 320,000 / 384,000 training sequences,
# against the paper's 74,000 / 209,000 / 853,000 sequences to its stopping rule (Table 7).
BUDGETS = "100:3000,500:5000,1000:6000"


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    words = parse_arg(arg, tiny=False, T=0, seeds=0, max_minutes=0.0)  # unknown words raise
    c = ml_collections.ConfigDict()
    c.experiment = "adding_study"
    c.lengths = "100,500,1000"  # the T of the grid, in priority order
    c.budgets = BUDGETS  # "T:steps,...": the same budget for every model at that T
    c.models = "lstm_chrono,lstm_fb1,gru,srn"  # the grid's models, in priority order (per T)
    c.seeds = 3
    c.max_minutes = 0.0  # wall-time budget of one sitting (0: none)

    c.search = ml_collections.ConfigDict()  # at search.length, seed 0, the same budget
    c.search.length = 100
    c.search.learning_rates = "1e-3,3e-3,1e-2"
    c.search.gru = "gru,gru_chrono"  # update-gate bias 0 vs chrono (log-spaced in [0, log(T-1)])
    c.search.srn = "srn,srn_identity"  # recurrent weights orthogonal (default) vs identity
    # A best setting (off the default) runs at the longer T only if it solved this fraction of
    # validation at search.length.
    c.search.min_solved_to_extend = 0.5

    c.data = ml_collections.ConfigDict()
    c.data.batch_size = 64
    c.data.stop_size = 2048  # fresh sequences the stopping rule scores every eval_every steps
    c.data.test_size = 2560  # fresh sequences scored at the rule and at the budget (the paper's)
    c.data.eval_batch = 512

    c.model = ml_collections.ConfigDict()
    c.model.hidden = 32
    c.model.implementation = "auto"  # the layers' default engine (the compiled CPU kernel)

    c.train = ml_collections.ConfigDict()
    c.train.learning_rate = 3e-3  # Adam; the LSTM's, and the search's middle value
    c.train.clip_norm = 1.0
    c.train.eval_every = 100  # the stopping rule's granularity: 6,400 sequences at batch 64
    c.train.checkpoint_every = 500
    c.train.chunk_steps = 1000  # max_minutes is checked between chunks

    c.diagnostics = ml_collections.ConfigDict()
    c.diagnostics.lengths = "100,500"  # gradient-by-lag curves of the seed-0 cells at these T
    c.diagnostics.batch_size = 64
    c.diagnostics.exploding_scale = 3.0

    if words.tiny:
        c.lengths = "12,16"
        c.budgets = "12:40,16:60"
        c.models = "lstm_chrono,srn"
        c.seeds = 2
        c.search.length = 12
        c.search.learning_rates = "3e-3,1e-2"
        c.search.gru = "gru_chrono"
        c.search.srn = "srn"
        c.data.batch_size = 16
        c.data.stop_size = 64
        c.data.test_size = 128
        c.data.eval_batch = 64
        c.model.hidden = 8
        c.train.eval_every = 10
        c.train.checkpoint_every = 20
        c.train.chunk_steps = 20
        c.diagnostics.lengths = "16"
        c.diagnostics.batch_size = 8
    if words.T:
        if str(words.T) not in c.lengths.split(","):
            raise ValueError(f"config variant T={words.T}: the study's lengths are {c.lengths}")
        c.lengths = str(words.T)
    if words.seeds:
        c.seeds = words.seeds
    if words.max_minutes:
        c.max_minutes = words.max_minutes
    return c
