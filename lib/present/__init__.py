"""Presentation without Streamlit: statistics behind the charts, plotly figures, text for display."""
