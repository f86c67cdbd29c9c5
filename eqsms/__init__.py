"""EQSMS Risk's house: the settings every stage reads (``eqsms.settings``) and the root of the ``eqsms`` command
line (``eqsms.cli``), which each stage's own commands plug into. Stages never import ``eqsms.cli``."""
