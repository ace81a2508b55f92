# redeliveries within the window add nothing; the window and the cap are
# per location
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;
use Time::HiRes qw(time);
use WaBody qw(text_message status_item messages_body);

# acl => 0: other stream prefixes than the ACL users' (test-acl)
my $t = WaTest->new(acl => 0);
$t->start_redis;
$t->start_nginx(server => <<EOF);
        location = /nodedupe {
            whatsapp_webhook;
            whatsapp_dedupe off;
            whatsapp_stream_prefix nd;
        }
        location = /short {
            whatsapp_webhook;
            whatsapp_dedupe 1s;
            whatsapp_stream_prefix short;
        }
        location = /capped {
            whatsapp_webhook;
            whatsapp_stream_maxlen 100;
            whatsapp_dedupe off;
            whatsapp_stream_prefix capped;
        }
        location = /uncapped {
            whatsapp_webhook;
            whatsapp_stream_maxlen off;
            whatsapp_dedupe off;
            whatsapp_stream_prefix uncapped;
        }
EOF

my $body = messages_body(messages => [ text_message('wamid.D1', 'hi') ],
                         statuses => [ status_item('wamid.O1', 'sent') ]);

is $t->post($body)->{status}, 200, 'first delivery: 200';
is $t->post($body)->{status}, 200, 'redelivery: 200';
is $t->xlen('wa:messages'), 1, 'message once';
is $t->xlen('wa:statuses'), 1, 'status once';

my $ttl = $t->redis('TTL', 'wa:dedupe:message:wamid.D1');
ok $ttl > 86000 && $ttl <= 86400, "dedupe key lives a day ($ttl s)";
ok $t->redis('EXISTS', 'wa:dedupe:status:wamid.O1:sent'),
    'status dedupe key is wamid:status';

# a new status of the same message is a new event
$body = messages_body(statuses => [ status_item('wamid.O1', 'delivered') ]);
is $t->post($body)->{status}, 200, 'next status: 200';
is $t->xlen('wa:statuses'), 2, 'delivered appended after sent';

# a batch that mixes old and new items appends only the new
$body = messages_body(messages => [ text_message('wamid.D1', 'hi'),
                                    text_message('wamid.D2', 'again') ]);
is $t->post($body)->{status}, 200, 'mixed batch: 200';
is_deeply [ map { $_->{msg_id} } $t->stream_events('wa:messages') ],
    [ 'wamid.D1', 'wamid.D2' ], 'only the new one appended';

my $c = $t->status_counters;
is $c->{events_duplicate}, 3, '3 duplicates counted';
is $c->{events_appended}, 4, '4 appends counted';

# dedupe off: every delivery appends
$body = messages_body(messages => [ text_message('wamid.N1', 'x') ]);
$t->post($body, path => '/nodedupe') for 1 .. 3;
is $t->xlen('nd:messages'), 3, 'dedupe off: 3 appends';
is scalar @{ $t->redis('KEYS', 'nd:*dedupe*') }, 0, 'and no dedupe keys';

# a short window expires
$body = messages_body(messages => [ text_message('wamid.W1', 'x') ]);
my $t0 = time;
$t->post($body, path => '/short');
$t->post($body, path => '/short');
SKIP: {
    # two posts a second apart on a very busy machine: not the case
    skip sprintf('the two posts took %.1f s, more than the 1 s window',
                 time - $t0), 1 if time - $t0 >= 1;
    is $t->xlen('short:messages'), 1, 'inside the window: once';
}
my ($key) = @{ $t->redis('KEYS', 'short:*dedupe*') };
ok $key, "the window is held by $key";
ok $t->wait_for(sub { !$t->redis('EXISTS', $key) }, 10),
    'and Redis expires it';
my $n = $t->xlen('short:messages');
$t->post($body, path => '/short');
is $t->xlen('short:messages'), $n + 1, 'after the window: again';

# the hard cap trims approximately
for my $round (0 .. 4) {
    my @m = map { text_message("wamid.C$round.$_", 'x') } 1 .. 200;
    $t->post(messages_body(messages => \@m), path => '/capped');
}
my $len = $t->xlen('capped:messages');
ok $len >= 100 && $len < 1000, "1000 appends under maxlen 100: $len kept";

# no cap: every entry stays
for my $round (0 .. 4) {
    my @m = map { text_message("wamid.U$round.$_", 'x') } 1 .. 200;
    $t->post(messages_body(messages => \@m), path => '/uncapped');
}
is $t->xlen('uncapped:messages'), 1000, 'maxlen off: all 1000 kept';

done_testing;
