import streamlit as st

st.title("lesson_7_classifier")
st.info("This page is being written.")
