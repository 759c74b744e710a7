"""Apache Spark engines: batch routing (`tierwise batch --engine spark`) and distributed
embedding of training logs into the embedding cache (`tierwise embed --engine spark`).

pyspark is imported lazily, inside the functions that need it; importing this package loads
nothing heavy. Executors import only the torch-free runtime (:mod:`.worker`).
"""
