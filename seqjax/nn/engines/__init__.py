"""Fast engines for the recurrent layers, one module per engine (the scan in
:mod:`seqjax.nn.recurrence` is the reference engine)."""
