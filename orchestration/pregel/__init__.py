"""The superstep machine: planning (`plan`), the way into a run (`entry`), the sans-I/O loop
(`loop`, yielding `effects`) and the two drivers that fulfil those effects (`drivers`). No I/O
of its own: the saver and the node functions are reached only through effects."""
