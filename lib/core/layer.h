/*
 * Forced into every file of the core layer (lib/meson.build): the core is
 * what the PAM module links, inside sshd, sudo and login, and it must never
 * reach the network.  Poisoning libcurl's entry points makes a core file
 * that includes <curl/curl.h>, or calls into libcurl, fail to compile, so
 * the layering holds by construction and not by a linker flag.
 */
#ifndef PG_CORE_LAYER_H
#define PG_CORE_LAYER_H

#pragma GCC poison CURL CURLcode CURLM curl_easy_init curl_easy_perform curl_global_init
#pragma GCC poison curl_multi_init curl_url

#endif
