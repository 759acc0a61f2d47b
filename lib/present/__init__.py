"""Presentation without Streamlit: statistics behind the charts, plotly figures, display text."""
