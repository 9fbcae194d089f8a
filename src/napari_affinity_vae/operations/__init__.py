"""The verbs of the pipeline, free of Qt, that the command line and the dock widgets both call
with the same defaults (:mod:`.defaults`):

- pick: :func:`.pick.pick_tomogram_steps` (a generator yielding progress, on the level of a
  multiscale tomogram the picker needs), or ``pick_tomogram``;
- embed: :func:`model.embedding.embed_steps` (extract and encode, streaming), or ``embed``;
- analyse: :func:`.analyse.analyse_steps` (project, cluster, snap centres);
- decode: :func:`.decode.source_vector` (a particle, a selection's mean, a cluster centre) and
  :func:`.decode.traversal`, then :func:`model.inference.decode`;
- explain: :func:`analysis.explain.explain_selection` (a selection's few latent dimensions, an
  equation and its accuracy against every dimension's) and :func:`.explain.fit_particle_column`
  (a column of the table as a short polynomial of the latents);
- export: :func:`.export.export_parts` and :func:`.export.write_parts` (all files or none);
- the bundled model's training set: :func:`.training.bundled_training_set`.

Long verbs are generators that yield how many units are done and return their result.
"""
