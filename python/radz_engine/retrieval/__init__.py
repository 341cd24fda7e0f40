"""Similar-case retrieval: the screened images most similar to a query, with their findings.

    radz screen DIR --out s.parquet --embeddings        # embeddings beside the scores
    radz index build s.parquet --out idx --labels labels.csv
    radz similar image.dcm --index idx --k 10
    Engine().similar("image.dcm", k=10, index="idx")    # or Engine(similar_index="idx")

vectors.py: the search (FAISS through the C++ core, or exact numpy); index.py: the index folder
(build, add, open, search); labels.py: confirmed findings from a labels CSV.
"""

from radz_engine.retrieval.index import Neighbour, SimilarIndex, add_to_index, build_index, open_index

__all__ = ["Neighbour", "SimilarIndex", "build_index", "add_to_index", "open_index"]
