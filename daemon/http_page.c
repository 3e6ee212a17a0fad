#include "http_internal.h"
const char http_page_html[] = "<!doctype html><title>basisnetd</title>\n";
const size_t http_page_len = sizeof http_page_html - 1;
