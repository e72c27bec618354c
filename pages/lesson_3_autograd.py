import streamlit as st

st.title("lesson_3_autograd")
st.info("This page is being written.")
