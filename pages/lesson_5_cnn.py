import streamlit as st

st.title("lesson_5_cnn")
st.info("This page is being written.")
