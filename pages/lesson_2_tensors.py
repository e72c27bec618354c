import streamlit as st

st.title("lesson_2_tensors")
st.info("This page is being written.")
