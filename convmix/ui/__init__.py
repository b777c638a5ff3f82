"""Streamlit views shared by the pages: the only part of convmix that imports streamlit."""
