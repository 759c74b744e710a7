"""Label your own traffic: from a log of prompts to the prompts × tiers table training needs.

``tierwise label CONFIG`` reads prompts (any source the importers read, or the gateway's
decision log), samples and deduplicates them, asks every tier through the shared upstream
client (:mod:`tierwise.router.upstreams`), scores each answer (reference match, an LLM judge,
or a Python function), within a hard USD budget and resumably (a SQLite cache of finished
calls), and writes the wide table plus the experiment config that ``tierwise train`` runs.

One concept per module: ``config`` (schema), ``sources`` (read, dedup, sample),
``gateway_log``, ``scorers/`` (registry + one module per scorer), ``cache``, ``budget``,
``plan`` (calls and the dry-run estimate), ``runner``, ``writer``, ``report``, ``job``.
"""

from tierwise.eval.labelling.config import LabellingConfig, load_labelling

__all__ = ["LabellingConfig", "load_labelling"]
