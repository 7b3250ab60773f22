"""recsys_retriever."""
